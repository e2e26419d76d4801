// Package jinja is a patched copy of github.com/ardanlabs/jinja v1.8.0, a
// pure-Go Jinja engine for LLM chat templates. The patch (PATCHES.md)
// brings it closer to Python Jinja2: whitespace control limited to the
// adjacent text, UndefinedError on arithmetic with undefined values,
// markupsafe's Markup for |safe, Python's printing of None and floats, and
// an order-keeping fromjson.
package jinja
