package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// The Docker CLI's --format: Go templates with its functions, "table"
// formats through a tab writer with a header row, "json" one object a
// line.

var templateFuncs = template.FuncMap{
	"json":     formatJSON,
	"split":    strings.Split,
	"join":     joinElements,
	"title":    strings.Title, //nolint:staticcheck // ASCII field values, as the Docker CLI uses it
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      padWithSpace,
	"truncate": truncateWithLength,
	"println":  fmt.Sprintln,
}

// headerFuncs keep a table's header cells intact.
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"split":    func(v string, _ string) string { return v },
	"join":     func(v string, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

func formatJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSpace(buf.String())
}

func joinElements(elems any, sep string) (string, error) {
	if elems == nil {
		return "", nil
	}
	if ss, ok := elems.([]string); ok {
		return strings.Join(ss, sep), nil
	}
	rv := reflect.ValueOf(elems)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return "", fmt.Errorf("expected slice, got %T", elems)
	}
	parts := make([]string, rv.Len())
	for i := range parts {
		parts[i] = fmt.Sprint(rv.Index(i).Interface())
	}
	return strings.Join(parts, sep), nil
}

func padWithSpace(s string, prefix, suffix int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
}

func truncateWithLength(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// parseTemplate parses a --format value with the Docker CLI's functions.
func parseTemplate(format string) (*template.Template, error) {
	t, err := template.New("").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// templateString turns a --format value into the template it stands for.
func templateString(format string) string {
	switch format {
	case "table":
		return ""
	case "json":
		return "{{json .}}"
	}
	out := strings.TrimPrefix(format, "table")
	out = strings.Trim(out, " ")
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(out)
}

// headers are a table's column titles by field name; a field taking an
// argument ({{.Label "k"}}) is titled by its argument, as with the Docker CLI.
type headers map[string]string

// Label is the title of a {{.Label "k"}} column.
func (h headers) Label(name string) string { return name }

// writeRows renders rows with format ("table", "table TEMPLATE", "json",
// or a template; "" is defaultTable), the header of a table from header.
func writeRows(out io.Writer, format, defaultTable string, header headers, rows []any) error {
	if format == "" || format == "table" {
		format = defaultTable
	}
	tmpl, err := parseTemplate(templateString(format))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, r := range rows {
		if err := tmpl.Execute(&buf, r); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		buf.WriteByte('\n')
	}
	if !strings.HasPrefix(format, "table") {
		_, err := buf.WriteTo(out)
		return err
	}
	tw := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	_ = tmpl.Funcs(headerFuncs).Execute(tw, header)
	tw.Write([]byte{'\n'})
	buf.WriteTo(tw)
	return tw.Flush()
}

// methodsJSON is {{json .}} of a row: its exported methods without
// arguments, as the Docker CLI marshals its formatting contexts.
func methodsJSON(x any) ([]byte, error) {
	v := reflect.ValueOf(x)
	t := v.Type()
	m := map[string]any{}
	for i := 0; i < v.NumMethod(); i++ {
		meth := t.Method(i)
		if !unicode.IsUpper(rune(meth.Name[0])) || meth.Name == "MarshalJSON" {
			continue
		}
		f := v.Method(i)
		if f.Type().NumIn() != 0 || f.Type().NumOut() != 1 {
			continue
		}
		m[meth.Name] = f.Call(nil)[0].Interface()
	}
	return json.Marshal(m)
}
