package llm

import "testing"

func TestStopMatcher(t *testing.T) {
	cases := []struct {
		stops  []string
		pieces []string
		want   []string // emitted after each piece
		end    string   // flushed
		stop   int      // index of the piece that completes a stop, or -1
	}{
		{nil, []string{"a", "b"}, []string{"a", "b"}, "", -1},
		{[]string{"END"}, []string{"x", "E", "N", "D", "y"}, []string{"x", "", "", ""}, "", 3},
		{[]string{"END"}, []string{"x", "E", "N", "o"}, []string{"x", "", "", "ENo"}, "", -1},
		{[]string{"END"}, []string{"xEN"}, []string{"x"}, "EN", -1},
		{[]string{"ab", "b"}, []string{"xab"}, []string{"x"}, "", 0},
		{[]string{"ab", "bc"}, []string{"x", "bcd"}, []string{"x", ""}, "", 1},
	}
	for i, tc := range cases {
		m := stopMatcher{stops: tc.stops}
		for j, p := range tc.pieces {
			out, stopped := m.push(p)
			if j < len(tc.want) && out != tc.want[j] {
				t.Errorf("case %d piece %d: emitted %q, want %q", i, j, out, tc.want[j])
			}
			if stopped != (j == tc.stop) {
				t.Errorf("case %d piece %d: stopped=%v", i, j, stopped)
			}
			if stopped {
				break
			}
		}
		if tc.stop < 0 {
			if got := m.flush(); got != tc.end {
				t.Errorf("case %d: flushed %q, want %q", i, got, tc.end)
			}
		}
	}
}
