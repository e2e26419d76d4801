package engine

import "testing"

func TestIncompleteSuffix(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 0},
		{"a\xc3", 1},            // first byte of é
		{"a\xc3\xa9", 0},        // é complete
		{"\xe6\xbc", 2},         // two of three bytes of 漢
		{"\xe6\xbc\xa2", 0},     // 漢 complete
		{"x\xf0\x9f\x98", 3},    // three of four bytes of 😀
		{"\xf0\x9f\x98\x80", 0}, // 😀 complete
		{"a\x80", 0},            // a stray continuation byte never completes
		{"a\xff", 0},            // never valid
		{"\xe6\x41", 0},         // a lead byte followed by ASCII is already broken
		{"\xc3\xa9\xe6", 1},     // complete é, then a lead byte
		{"\x80\x80\x80\x80", 0}, // continuation bytes only
		{"\xf8\x80\x80", 0},     // 5-byte lead: invalid
	}
	for _, c := range cases {
		if got := incompleteSuffix([]byte(c.in)); got != c.want {
			t.Errorf("incompleteSuffix(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestValidUTF8(t *testing.T) {
	cases := map[string]string{
		"héllo":        "héllo",
		"a\xffb":       "a\uFFFDb",
		"\xe6\x41":     "\uFFFDA",
		"\xf0\x9f\x98": "\uFFFD\uFFFD\uFFFD",
	}
	for in, want := range cases {
		if got := validUTF8([]byte(in)); got != want {
			t.Errorf("validUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSystemInfo(t *testing.T) {
	got := parseSystemInfo("CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | REPACK = 1 | CUDA : ARCHS = 890 | USE_GRAPHS = 1 | ")
	if len(got["CPU"]) != 3 || got["CPU"][0] != "SSE3" || got["CPU"][2] != "REPACK" {
		t.Errorf("CPU features %v", got["CPU"])
	}
	if len(got["CUDA"]) != 2 || got["CUDA"][0] != "ARCHS" {
		t.Errorf("CUDA features %v", got["CUDA"])
	}
}
