package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/sampler"
	"github.com/llm-go/llm/tokenizer"
)

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	status     int
	code       string        // OpenAI's error code, e.g. "model_not_found"
	param      string        // the request field at fault, if any
	msg        string        // what the client reads
	retryAfter time.Duration // sent as Retry-After when > 0
	err        error         // the cause, if any
}

func (e *apiError) Error() string { return e.msg }

func (e *apiError) Unwrap() error { return e.err }

// errorf returns an apiError with a formatted message.
func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// badRequest is a 400 about the field param.
func badRequest(param, format string, args ...any) *apiError {
	e := errorf(http.StatusBadRequest, "invalid_request", format, args...)
	e.param = param
	return e
}

// errBusy says that a model's running and waiting requests are at their limit.
func errBusy(model string, running, waiting int) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: "rate_limit_exceeded", retryAfter: time.Second,
		msg: fmt.Sprintf("model %q is busy: %d requests running and %d waiting, the most it takes; retry later", model, running, waiting)}
}

// errModelNotFound says that name names no model this server can load.
func errModelNotFound(name string, cause error) *apiError {
	msg := fmt.Sprintf("model %q not found", name)
	switch {
	case errors.Is(cause, hub.ErrOffline):
		msg += ": it is not in the local Hub cache, and the server is offline (HF_HUB_OFFLINE)"
	case cause != nil:
		msg += ": " + clean(cause)
	}
	return &apiError{status: http.StatusNotFound, code: "model_not_found", param: "model", msg: msg, err: cause}
}

// asAPIError maps an error to the status it is answered with.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var oe *sampler.OptionError
	var te *tokenizer.TemplateError
	var ue *tokenizer.UndefinedError
	switch {
	case errors.As(err, &te), errors.As(err, &ue):
		// The chat template rejects the conversation (roles out of order, a
		// missing field): the request's fault.
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", param: "messages", msg: clean(err), err: err}
	case errors.As(err, &oe):
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", param: oe.Name, msg: clean(err), err: err}
	case errors.Is(err, llm.ErrPromptTooLong):
		return &apiError{status: http.StatusBadRequest, code: "context_length_exceeded", msg: clean(err), err: err}
	case errors.Is(err, llm.ErrEmptyPrompt):
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", param: "prompt", msg: clean(err), err: err}
	case errors.Is(err, llm.ErrNoFIM):
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", param: "suffix", msg: clean(err), err: err}
	case errors.Is(err, llm.ErrToolsUnsupported):
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", param: "tools", msg: clean(err), err: err}
	case errors.Is(err, sampler.ErrInvalidGrammar), errors.Is(err, sampler.ErrInvalidSchema), errors.Is(err, sampler.ErrInvalidOption):
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", msg: clean(err), err: err}
	case errors.Is(err, llm.ErrUnknownTask):
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", param: "task", msg: clean(err), err: err}
	case errors.Is(err, llm.ErrNotReranker), errors.Is(err, llm.ErrReranker):
		return &apiError{status: http.StatusBadRequest, code: "model_not_supported", param: "model", msg: clean(err), err: err}
	case errors.Is(err, llm.ErrUnsupportedModel):
		return &apiError{status: http.StatusBadRequest, code: "unsupported_model", param: "model", msg: clean(err), err: err}
	case errors.Is(err, llm.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: "model_unloaded", retryAfter: time.Second,
			msg: "the model was unloaded while the request ran; retry", err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusGatewayTimeout, code: "timeout", msg: "the request took longer than the server's request timeout", err: err}
	case errors.Is(err, context.Canceled):
		return &apiError{status: 499, code: "canceled", msg: "the request was canceled", err: err}
	case errors.Is(err, hub.ErrUnauthorized):
		return &apiError{status: http.StatusForbidden, code: "hub_unauthorized", msg: clean(err), err: err}
	case errors.Is(err, hub.ErrDiskFull):
		return &apiError{status: http.StatusInsufficientStorage, code: "disk_full", msg: clean(err), err: err}
	}
	return &apiError{status: http.StatusInternalServerError, code: "internal_error", msg: clean(err), err: err}
}

// clean is an error's message without the package prefixes ("llm: ",
// "sampler: ", "hub: ") that wrapping leaves inside it.
func clean(err error) string {
	return prefixes.Replace(err.Error())
}

var prefixes = strings.NewReplacer("llm: ", "", "sampler: ", "", "hub: ", "")

// openAIErrorBody is OpenAI's error shape.
type openAIErrorBody struct {
	Error openAIErrorDetail `json:"error"`
}

type openAIErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// openAIErrorType is the "type" OpenAI gives errors of a status.
func openAIErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func (e *apiError) openAI() openAIErrorBody {
	d := openAIErrorDetail{Message: e.msg, Type: openAIErrorType(e.status)}
	if e.param != "" {
		d.Param = &e.param
	}
	if e.code != "" {
		d.Code = &e.code
	}
	return openAIErrorBody{Error: d}
}

// writeOpenAIError answers err in OpenAI's shape.
func writeOpenAIError(w http.ResponseWriter, err error) {
	e := asAPIError(err)
	if e.status == 499 {
		return // the client is gone
	}
	setRetryAfter(w, e)
	writeJSON(w, e.status, e.openAI())
}

// writeOllamaError answers err in Ollama's shape. A busy model is a 503
// there, as Ollama answers when its queue is full.
func writeOllamaError(w http.ResponseWriter, err error) {
	e := asAPIError(err)
	if e.status == 499 {
		return
	}
	status := e.status
	if status == http.StatusTooManyRequests {
		status = http.StatusServiceUnavailable
	}
	setRetryAfter(w, e)
	writeJSON(w, status, map[string]string{"error": e.msg})
}

func setRetryAfter(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(e.retryAfter.Round(time.Second)/time.Second))))
	}
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// errorWriter returns the error writer of the API that path belongs to.
func errorWriter(path string) func(http.ResponseWriter, error) {
	if strings.HasPrefix(path, "/v1/") {
		return writeOpenAIError
	}
	return writeOllamaError
}
