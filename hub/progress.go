package hub

// Progress receives download progress. Start is called once per file that
// must be fetched (files already in the cache are not reported), from any
// goroutine.
type Progress interface {
	// Start announces a download of size bytes (-1 if unknown), of which done
	// are already on disk from an earlier, interrupted run.
	Start(file string, size, done int64) FileProgress
}

// FileProgress follows one file's download.
type FileProgress interface {
	Advance(n int64) // n more bytes written
	Done(err error)  // finished, or failed with err
}

type nopProgress struct{}

func (nopProgress) Start(string, int64, int64) FileProgress { return nopProgress{} }
func (nopProgress) Advance(int64)                           {}
func (nopProgress) Done(error)                              {}
