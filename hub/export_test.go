package hub

// SetFreeSpace replaces the free-space probe of c (tests only).
func SetFreeSpace(c *Client, f func(dir string) (int64, error)) { c.freeSpace = f }
