package engine

/*
#include <stdlib.h>
#include "llama_api.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// ErrUnknownTemplate means llama.cpp has no built-in implementation of a
// chat template: the name is not one of BuiltinTemplates, and the template
// text has none of the telltale strings its detection looks for.
var ErrUnknownTemplate = errors.New("engine: llama.cpp has no built-in implementation of this chat template")

// ChatMessage is one message for ApplyBuiltinTemplate.
type ChatMessage struct {
	Role    string
	Content string
}

// BuiltinTemplates lists the chat formats llama.cpp implements in C++,
// without a Jinja engine ("chatml", "llama3", "mistral-v7", ...).
func BuiltinTemplates() []string {
	n := C.llama_chat_builtin_templates(nil, 0)
	if n <= 0 {
		return nil
	}
	names := make([]*C.char, int(n))
	n = C.llama_chat_builtin_templates(&names[0], C.size_t(len(names)))
	out := make([]string, 0, int(n))
	for _, p := range names[:int(n)] {
		out = append(out, C.GoString(p))
	}
	return out
}

// ApplyBuiltinTemplate formats messages with llama.cpp's built-in
// implementation of tmpl, which is a name from BuiltinTemplates or a
// template's source, whose format llama.cpp recognises by telltale
// strings (as llama-server does without --jinja). addAssistant opens the
// assistant's turn. It returns ErrUnknownTemplate when llama.cpp
// recognises neither.
func ApplyBuiltinTemplate(tmpl string, messages []ChatMessage, addAssistant bool) (string, error) {
	if strings.IndexByte(tmpl, 0) >= 0 {
		return "", fmt.Errorf("engine: chat template: a NUL byte: %w", ErrInvalidArgument)
	}
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))
	var msgs *C.struct_llama_chat_message
	if len(messages) > 0 {
		size := C.size_t(len(messages)) * C.size_t(unsafe.Sizeof(C.struct_llama_chat_message{}))
		msgs = (*C.struct_llama_chat_message)(C.malloc(size))
		defer C.free(unsafe.Pointer(msgs))
		arr := unsafe.Slice(msgs, len(messages))
		var strs []*C.char
		defer func() {
			for _, s := range strs {
				C.free(unsafe.Pointer(s))
			}
		}()
		total := 0
		for i, m := range messages {
			if strings.IndexByte(m.Role, 0) >= 0 || strings.IndexByte(m.Content, 0) >= 0 {
				return "", fmt.Errorf("engine: chat message %d: a NUL byte: %w", i, ErrInvalidArgument)
			}
			total += len(m.Role) + len(m.Content)
			role, content := C.CString(m.Role), C.CString(m.Content)
			strs = append(strs, role, content)
			arr[i] = C.struct_llama_chat_message{role: role, content: content}
		}
		if total > 1<<30 {
			return "", fmt.Errorf("engine: chat messages of %d bytes: %w", total, ErrInvalidArgument)
		}
	}
	size := 1024
	for _, m := range messages {
		size += 2 * (len(m.Role) + len(m.Content) + 64)
	}
	for range 2 {
		buf := make([]byte, size)
		n := C.llama_chat_apply_template(ctmpl, msgs, C.size_t(len(messages)), C.bool(addAssistant),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)))
		switch {
		case n < 0:
			return "", ErrUnknownTemplate
		case int(n) <= len(buf):
			return string(buf[:n]), nil
		}
		size = int(n) // the buffer was too small: n is the length needed
	}
	return "", fmt.Errorf("engine: chat template output keeps growing: %w", ErrInvalidArgument)
}
