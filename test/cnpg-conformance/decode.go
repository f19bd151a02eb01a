package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/cloudnative-pg/cloudnative-pg/pkg/postgres"
)

type decodeRequest struct {
	Documents []struct {
		Kind string `json:"kind"`
		Body string `json:"body"`
	} `json:"documents"`
}

type decodedDocument struct {
	Kind string `json:"kind"`
	// OperatorError is what the operator's json.Unmarshal (rawInstanceStatusRequest) returns; empty when it decodes.
	OperatorError string `json:"operatorError"`
	// StrictError is the first error of a decoder with DisallowUnknownFields.
	StrictError string `json:"strictError"`
	// UnknownFields lists every field CNPG's type does not have, as JSON paths.
	UnknownFields []string `json:"unknownFields"`
	// Decoded is the document as CNPG's operator sees it after decoding (re-encoded from the Go value).
	Decoded *postgres.PostgresqlStatus `json:"decoded,omitempty"`
}

func runDecode(input []byte) (any, error) {
	var req decodeRequest
	if err := json.Unmarshal(input, &req); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	reports := make([]decodedDocument, 0, len(req.Documents))
	for _, doc := range req.Documents {
		reports = append(reports, decodeOne(doc.Kind, []byte(doc.Body)))
	}
	return reports, nil
}

func decodeOne(kind string, body []byte) decodedDocument {
	report := decodedDocument{Kind: kind, UnknownFields: []string{}}
	// The operator's way: pkg/management/postgres/webserver/client/remote rawInstanceStatusRequest.
	var status postgres.PostgresqlStatus
	if err := json.Unmarshal(body, &status); err != nil {
		report.OperatorError = err.Error()
	} else {
		report.Decoded = &status
	}
	strict := json.NewDecoder(bytes.NewReader(body))
	strict.DisallowUnknownFields()
	var strictStatus postgres.PostgresqlStatus
	if err := strict.Decode(&strictStatus); err != nil {
		report.StrictError = err.Error()
	}
	var generic any
	if err := json.Unmarshal(body, &generic); err == nil {
		report.UnknownFields = unknownFields(generic, reflect.TypeOf(status), "")
		sort.Strings(report.UnknownFields)
	}
	return report
}

// jsonFields maps a struct type's JSON names to field types (embedded structs flattened, "-" skipped).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					fields[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// unknownFields walks a decoded JSON value along a Go type and lists the object keys the type has no field for
// (encoding/json matches names case-insensitively, so do we).
func unknownFields(value any, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch v := value.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			if t.PkgPath() == "time" || implementsUnmarshaler(t) {
				return nil
			}
			fields := jsonFields(t)
			for key, child := range v {
				ft, ok := fields[key]
				if !ok {
					for name, candidate := range fields {
						if strings.EqualFold(name, key) {
							ft, ok = candidate, true
							break
						}
					}
				}
				if !ok {
					out = append(out, path+"."+key)
					continue
				}
				out = append(out, unknownFields(child, ft, path+"."+key)...)
			}
		case reflect.Map:
			for key, child := range v {
				out = append(out, unknownFields(child, t.Elem(), path+"."+key)...)
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, child := range v {
				out = append(out, unknownFields(child, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return out
}

func implementsUnmarshaler(t reflect.Type) bool {
	unmarshaler := reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	return reflect.PointerTo(t).Implements(unmarshaler)
}
