package hub

// matchGlob reports whether name matches pattern with the rules of Python's
// fnmatch, which huggingface_hub uses for allow/ignore patterns: '*' matches
// any run of characters including '/', '?' one character, "[abc]", "[a-z]"
// and "[!abc]" character classes. A pattern ending in '/' matches everything
// below that folder. Matching is case-sensitive.
func matchGlob(pattern, name string) bool {
	if len(pattern) > 0 && pattern[len(pattern)-1] == '/' {
		pattern += "*"
	}
	p, n := []rune(pattern), []rune(name)
	// Iterative matcher with single-star backtracking.
	pi, ni := 0, 0
	starP, starN := -1, 0
	for ni < len(n) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				starP, starN = pi, ni
				pi++
				continue
			case '?':
				pi++
				ni++
				continue
			case '[':
				if ok, next, valid := matchClass(p, pi, n[ni]); valid {
					if ok {
						pi = next
						ni++
						continue
					}
				} else if n[ni] == '[' { // unterminated class: literal '['
					pi++
					ni++
					continue
				}
			default:
				if p[pi] == n[ni] {
					pi++
					ni++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		pi, ni = starP+1, starN
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches c against the class starting at p[i] == '['. It returns
// whether c is in the class, the index after the class, and whether the class
// is well formed.
func matchClass(p []rune, i int, c rune) (ok bool, next int, valid bool) {
	j := i + 1
	negate := false
	if j < len(p) && p[j] == '!' {
		negate = true
		j++
	}
	start := j
	for ; j < len(p); j++ {
		if p[j] == ']' && j > start {
			break
		}
	}
	if j >= len(p) {
		return false, 0, false
	}
	set := p[start:j]
	in := false
	for k := 0; k < len(set); k++ {
		if k+2 < len(set) && set[k+1] == '-' {
			if set[k] <= c && c <= set[k+2] {
				in = true
			}
			k += 2
			continue
		}
		if set[k] == c {
			in = true
		}
	}
	return in != negate, j + 1, true
}

// matchAny reports whether name matches one of patterns.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if matchGlob(p, name) {
			return true
		}
	}
	return false
}
