package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// readBody reads the request body, which the middleware limits; a body
// over the limit is a 413.
func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "request_too_large", "the request body is larger than %d bytes", mbe.Limit)
		}
		return nil, errorf(http.StatusBadRequest, "invalid_request", "reading the request body: %v", err)
	}
	return data, nil
}

// decodeBody reads the body and decodes it into v, a pointer to a struct.
// Unknown fields are accepted; a body that is not one JSON object, or a
// field of the wrong type, is a 400 naming the field.
func decodeBody(r *http.Request, v any) ([]byte, error) {
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return data, decodeJSON(data, v)
}

// decodeJSON decodes data, one JSON object, into v.
func decodeJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return badRequest("", "the request body is empty: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("", "malformed JSON: data after the request object")
	}
	return nil
}

// jsonError turns a decoding error into a 400 that says where the problem is.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &te):
		field := embedded.Replace(te.Field)
		if field == "" {
			return badRequest("", "the request body must be a JSON object, not %s", article(te.Value))
		}
		return badRequest(field, "field %q must be %s, not %s", field, jsonTypeName(te.Type.String()), article(te.Value))
	}
	return badRequest("", "malformed request: %v", err)
}

// embedded removes the names of embedded request structs from the field
// paths of decoding errors.
var embedded = strings.NewReplacer("openAIRequest.", "", "ollamaCommon.", "")

// article names a JSON value kind for an error message ("a string").
func article(kind string) string {
	switch kind {
	case "array", "object":
		return "an " + kind
	case "null":
		return "null"
	case "":
		return "this value"
	}
	if strings.HasPrefix(kind, "number") {
		return "a number"
	}
	return "a " + kind
}

// jsonTypeName names a Go type as the JSON value it decodes from.
func jsonTypeName(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"):
		return "an object"
	}
	return "a " + goType
}

// isNull reports whether a raw field is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// stringList parses a field that takes a string or an array of strings (as
// OpenAI's stop and input); absent or null is nil.
func stringList(field string, raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, badRequest(field, "field %q must be a string or an array of strings", field)
	}
	return many, nil
}
