package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// got is what a test reads from an input: events as compact strings and
// skips as "line:reason".
type got struct {
	Events []string
	Skips  []string
}

func eventString(e Event) string {
	return e.Domain + " " + e.Machine + " " + e.Time.Format(time.RFC3339Nano)
}

func readAll(t *testing.T, input []byte, opts *Options) got {
	t.Helper()

	r, err := NewReader(bytes.NewReader(input), opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return drain(t, r)
}

func drain(t *testing.T, r *Reader) got {
	t.Helper()

	var g got
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return g
		}
		var skip *SkipError
		if errors.As(err, &skip) {
			g.Skips = append(g.Skips, skipString(skip))
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		g.Events = append(g.Events, eventString(e))
	}
}

func skipString(s *SkipError) string {
	return strconv.FormatInt(s.Line, 10) + ":" + string(s.Reason)
}

const zeekDNSHeader = "#separator \\x09\n" +
	"#set_separator\t,\n" +
	"#empty_field\t(empty)\n" +
	"#unset_field\t-\n" +
	"#path\tdns\n" +
	"#fields\tts\tuid\tid.orig_h\tid.orig_p\tquery\n" +
	"#types\ttime\tstring\taddr\tport\tstring\n"

func TestReaderFormats(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		input  string
		want   got

		// undetectable marks inputs whose first line fits no format, so
		// only an explicit format reads them.
		undetectable bool
	}{
		{
			name:   "zeek dns tsv",
			format: FormatZeek,
			input: zeekDNSHeader +
				"1521911720.865716\tC1\t192.0.2.1\t5353\twww.example.com\n" +
				"1521911721\tC2\t192.0.2.2\t5353\t-\n" +
				"1521911722\tC3\t192.0.2.3\t5353\t(empty)\n" +
				"1521911723\tC4\t192.0.2.4\t5353\t\\x2d\n" +
				"1521911724\tC5\t192.0.2.5\t5353\ta\\x41b.example.net\n" +
				"1521911725\tC6\t192.0.2.6\twww.example.com\n" +
				"soon\tC7\t192.0.2.7\t5353\twww.example.com\n" +
				"1521911726\tC8\t-\t5353\twww.example.com\n" +
				"#close\t2024-04-12-19-34-07\n",
			want: got{
				Events: []string{
					"www.example.com 192.0.2.1 2018-03-24T17:15:20.865716Z",
					"- 192.0.2.4 2018-03-24T17:15:23Z",
					"aAb.example.net 192.0.2.5 2018-03-24T17:15:24Z",
				},
				Skips: []string{"9:missing_domain", "10:missing_domain", "13:malformed", "14:invalid_time", "15:missing_machine"},
			},
		},
		{
			name:   "zeek tsv with custom separator and markers",
			format: FormatZeek,
			input: "#separator \\x7c\n" +
				"#unset_field|NONE\n" +
				"#empty_field|EMPTY\n" +
				"#fields|ts|id_orig_h|query\n" +
				"1521911720.5|198.51.100.1|www.example.org\n" +
				"1521911720.5|198.51.100.1|NONE\n" +
				"1521911720.5|198.51.100.1|-\n",
			want: got{
				Events: []string{
					"www.example.org 198.51.100.1 2018-03-24T17:15:20.5Z",
					"- 198.51.100.1 2018-03-24T17:15:20.5Z",
				},
				Skips: []string{"6:missing_domain"},
			},
		},
		{
			name:         "zeek tsv data before header",
			format:       FormatZeek,
			undetectable: true,
			input: "1521911720\t192.0.2.1\twww.example.com\n" +
				"#fields\tts\tid.orig_h\tquery\n" +
				"1521911720\t192.0.2.1\twww.example.com\n",
			want: got{
				Events: []string{"www.example.com 192.0.2.1 2018-03-24T17:15:20Z"},
				Skips:  []string{"1:no_header"},
			},
		},
		{
			name:   "zeek ssl and http tsv",
			format: FormatZeek,
			input: "#separator \\x09\n#path\tssl\n#fields\tts\tid.orig_h\tserver_name\n" +
				"1521911720\t192.0.2.1\tsecure.example.com\n" +
				"1521911720\t192.0.2.2\t-\n" +
				"#separator \\x09\n#path\thttp\n#fields\tts\tid.orig_h\thost\turi\n" +
				"1521911721\t192.0.2.3\tweb.example.com:8080\t/\n" +
				"1521911721\t192.0.2.3\t[2001:db8::1]:80\t/\n" +
				"#separator \\x09\n#path\tconn\n#fields\tts\tid.orig_h\tproto\n" +
				"1521911722\t192.0.2.4\ttcp\n",
			want: got{
				Events: []string{
					"secure.example.com 192.0.2.1 2018-03-24T17:15:20Z",
					"web.example.com 192.0.2.3 2018-03-24T17:15:21Z",
				},
				Skips: []string{"5:missing_domain", "10:ip_address", "14:other_event"},
			},
		},
		{
			name:   "zeek json",
			format: FormatZeekJSON,
			input: `{"ts":1521911720.865716,"uid":"C1","id.orig_h":"192.0.2.1","query":"flat.example.com"}` + "\n" +
				`{"ts":1521911720865,"id_orig_h":"192.0.2.2","query":"millis.example.com"}` + "\n" +
				`{"ts":"2018-03-24T17:15:20.5Z","id":{"orig_h":"192.0.2.3"},"query":"nested.example.com"}` + "\n" +
				`{"_path":"dns","_write_ts":"2018-03-24T17:15:21Z","ts":"2018-03-24T17:15:20Z","id.orig_h":"192.0.2.4","query":"corelight.example.com"}` + "\n" +
				`{"_path":"ssl","ts":1521911720,"id.orig_h":"192.0.2.5","server_name":"tls.example.com"}` + "\n" +
				`{"_path":"http","ts":1521911720,"id.orig_h":"192.0.2.6","host":"web.example.com:81"}` + "\n" +
				`{"_path":"conn","ts":1521911720,"id.orig_h":"192.0.2.7"}` + "\n" +
				`{"_path":"dns","ts":1521911720,"id.orig_h":"192.0.2.8"}` + "\n" +
				`{"ts":1521911720,"query":"nomachine.example.com"}` + "\n" +
				`{"ts":true,"id.orig_h":"192.0.2.9","query":"badtime.example.com"}` + "\n" +
				`{"ts":1521911720,"id.orig_h":"192.0.2.9","query":"trunc` + "\n" +
				"\n" +
				`[1,2]` + "\n",
			want: got{
				Events: []string{
					"flat.example.com 192.0.2.1 2018-03-24T17:15:20.865716Z",
					"millis.example.com 192.0.2.2 2018-03-24T17:15:20.865Z",
					"nested.example.com 192.0.2.3 2018-03-24T17:15:20.5Z",
					"corelight.example.com 192.0.2.4 2018-03-24T17:15:20Z",
					"tls.example.com 192.0.2.5 2018-03-24T17:15:20Z",
					"web.example.com 192.0.2.6 2018-03-24T17:15:20Z",
				},
				Skips: []string{"7:other_event", "8:missing_domain", "9:missing_machine", "10:invalid_time", "11:malformed", "13:malformed"},
			},
		},
		{
			name:   "sysmon",
			format: FormatSysmon,
			input: `{"EventID":22,"Hostname":"WS1.example.com","host":"collector.example.net","UtcTime":"2019-12-05 01:49:47.506","QueryName":"nxlog.example.com"}` + "\n" +
				`{"EventID":"22","Computer":"WS2.example.com","UtcTime":"2023-09-05 15:48:16.285","TimeCreated":"2023-09-06T07:14:46.168Z","QueryName":"beat.example.com"}` + "\n" +
				`{"@timestamp":"2023-09-06T07:14:46.168Z","event":{"code":"22"},"host":{"name":"ws3"},"winlog":{"event_id":"22","computer_name":"WS3.example.com","event_data":{"QueryName":"ecs.example.com","UtcTime":"2023-09-05 15:48:17.000"}}}` + "\n" +
				`{"EventID":1,"Hostname":"WS1.example.com","UtcTime":"2019-12-05 01:49:47.506","Image":"cmd.exe"}` + "\n" +
				`{"EventID":22,"Hostname":"WS1.example.com","UtcTime":"2019-12-05 01:49:47.506"}` + "\n" +
				`{"EventID":22,"host":"collector.example.net","UtcTime":"2019-12-05 01:49:47.506","QueryName":"x.example.com"}` + "\n" +
				`{"EventID":22,"Hostname":"WS1.example.com","UtcTime":"yesterday","QueryName":"x.example.com"}` + "\n" +
				`not json` + "\n",
			want: got{
				Events: []string{
					"nxlog.example.com WS1.example.com 2019-12-05T01:49:47.506Z",
					"beat.example.com WS2.example.com 2023-09-05T15:48:16.285Z",
					"ecs.example.com WS3.example.com 2023-09-05T15:48:17Z",
				},
				Skips: []string{"4:other_event", "5:missing_domain", "6:missing_machine", "7:invalid_time", "8:malformed"},
			},
		},
		{
			name:   "sysmon in elastic ecs",
			format: FormatSysmon,
			input: `{"@timestamp":"2024-03-01T14:00:00Z","host":{"name":"ws1"},"event":{"code":"22","module":"sysmon"},"dns":{"question":{"name":"evil.example.net"}}}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:01Z","host":{"hostname":"ws2"},"event":{"code":22,"module":"sysmon"},"dns":{"question":{"name":"b.example.net"}}}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:02Z","winlog":{"computer_name":"WS3.example.com"},"event":{"code":"22","module":"sysmon"},"dns":{"question":{"name":"c.example.net"}}}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:03Z","host":{"name":"ws1"},"event":{"code":"3","module":"sysmon"},"destination":{"ip":"192.0.2.1"}}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:04Z","host":{"name":"ws1"},"event":{"code":"22","module":"sysmon"}}` + "\n",
			want: got{
				Events: []string{
					"evil.example.net ws1 2024-03-01T14:00:00Z",
					"b.example.net ws2 2024-03-01T14:00:01Z",
					"c.example.net WS3.example.com 2024-03-01T14:00:02Z",
				},
				Skips: []string{"4:other_event", "5:missing_domain"},
			},
		},
		{
			name:   "defender json",
			format: FormatDefender,
			input: `{"Timestamp":"2024-01-02T03:04:05.1234567Z","DeviceId":"d1","DeviceName":"pc1.example.com","RemoteUrl":"https://www.example.com/path?q=1"}` + "\n" +
				`{"Timestamp":"2024-01-02T03:04:06Z","DeviceName":"pc2.example.com","RemoteUrl":"api.example.net:443"}` + "\n" +
				`{"Timestamp":"2024-01-02T03:04:07Z","DeviceId":"d3","RemoteUrl":"","RemoteIP":"192.0.2.1"}` + "\n" +
				`{"records":[` +
				`{"time":"2024-01-02T03:04:08Z","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-01-02T03:04:08Z","DeviceId":"d4","RemoteUrl":"stream.example.org"}},` +
				`{"time":"2024-01-02T03:04:09Z","category":"AdvancedHunting-DeviceProcessEvents","properties":{"DeviceId":"d4"}},` +
				`{"time":"2024-01-02T03:04:10Z","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"DeviceId":"d5","RemoteUrl":"notime.example.org"}},` +
				`{"category":"AdvancedHunting-DeviceNetworkEvents","properties":{"RemoteUrl":"nodevice.example.org","Timestamp":"2024-01-02T03:04:11Z"}}` +
				`]}` + "\n" +
				`[{"Timestamp":"2024-01-02T03:04:12Z","DeviceId":"d6","RemoteUrl":"array.example.com"}]` + "\n" +
				`{"Schema":[],"Results":[{"Timestamp":"2024-01-02T03:04:13Z","DeviceId":"d7","RemoteUrl":"results.example.com"}]}` + "\n" +
				`{"records":"oops"}` + "\n",
			want: got{
				Events: []string{
					"www.example.com d1 2024-01-02T03:04:05.1234567Z",
					"api.example.net pc2.example.com 2024-01-02T03:04:06Z",
					"stream.example.org d4 2024-01-02T03:04:08Z",
					"notime.example.org d5 2024-01-02T03:04:10Z",
					"array.example.com d6 2024-01-02T03:04:12Z",
					"results.example.com d7 2024-01-02T03:04:13Z",
				},
				Skips: []string{"3:missing_domain", "4:other_event", "4:missing_machine", "7:malformed"},
			},
		},
		{
			name:   "defender csv",
			format: FormatDefender,
			input: "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,RemoteUrl\n" +
				"2024-01-02T03:04:05Z,d1,pc1,ConnectionSuccess,192.0.2.1,443,https://www.example.com/\n" +
				"2024-01-02T03:04:06Z,,pc2,ConnectionSuccess,192.0.2.2,443,\"cdn.example.net\"\n" +
				"2024-01-02T03:04:07Z,d3,pc3,ConnectionSuccess,192.0.2.3,443,\n" +
				"2024-01-02T03:04:08Z,d4,pc4,ConnectionSuccess\n",
			want: got{
				Events: []string{
					"www.example.com d1 2024-01-02T03:04:05Z",
					"cdn.example.net pc2 2024-01-02T03:04:06Z",
				},
				Skips: []string{"4:missing_domain", "5:malformed"},
			},
		},
		{
			name:   "generic csv",
			format: FormatCSV,
			input: "\xef\xbb\xbfTime, Domain ,Machine\n" +
				"2024-01-02T03:04:05Z,www.example.com,host-a\n" +
				"1704164646,\"quoted,example.com\",host-b\n" +
				"2024-01-02 03:04:07,zoneless.example.com,host-c\r\n" +
				"2024-01-02T03:04:08Z,,host-d\n" +
				"2024-01-02T03:04:09Z,www.example.com,\n" +
				"tomorrow,www.example.com,host-e\n" +
				"2024-01-02T03:04:10Z,www.example.com\n" +
				"\"unterminated,www.example.com,host-f\n",
			want: got{
				Events: []string{
					"www.example.com host-a 2024-01-02T03:04:05Z",
					"quoted,example.com host-b 2024-01-02T03:04:06Z",
					"zoneless.example.com host-c 2024-01-02T03:04:07Z",
				},
				Skips: []string{"5:missing_domain", "6:missing_machine", "7:invalid_time", "8:malformed", "9:malformed"},
			},
		},
		{
			name:         "csv without required columns",
			format:       FormatCSV,
			undetectable: true,
			input:        "domain,when\nwww.example.com,2024-01-02T03:04:05Z\n",
			want:         got{Skips: []string{"2:no_header"}},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := readAll(t, []byte(tt.input), &Options{Name: "test", Format: tt.format})
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("read %s mismatch (-want +got):\n%s", tt.format, diff)
			}

			if tt.undetectable {
				return
			}

			// Detection must pick the same format.
			auto := readAll(t, []byte(tt.input), &Options{Name: "test"})
			if diff := cmp.Diff(tt.want, auto); diff != "" {
				t.Errorf("read with auto-detection mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Format
	}{
		{"zeek separator", "#separator \\x09\n#fields\tts\n", FormatZeek},
		{"zeek fields only", "\n#fields\tts\tquery\n", FormatZeek},
		{"zeek json", `{"ts":1,"uid":"C1"}`, FormatZeekJSON},
		{"corelight", `{"_path":"dns","_write_ts":"2024-01-01T00:00:00Z"}`, FormatZeekJSON},
		{"sysmon nxlog", `{"EventID":22,"Hostname":"a"}`, FormatSysmon},
		{"sysmon ecs", `{"winlog":{"event_id":"22"}}`, FormatSysmon},
		{"sysmon other event first", `{"Channel":"Microsoft-Windows-Sysmon/Operational"}`, FormatSysmon},
		{"sysmon elastic ecs", `{"@timestamp":"2024-03-01T14:00:00Z","host":{"name":"ws1"},"event":{"code":"22","module":"sysmon"},"dns":{"question":{"name":"evil.example.net"}}}`, FormatSysmon},
		{"sysmon ecs module only", `{"event":{"module":"sysmon","code":"1"}}`, FormatSysmon},
		{"sysmon ecs without module", `{"event":{"code":"22"},"dns":{"question":{"name":"a.example.net"}}}`, FormatSysmon},
		{"sysmon ecs flat keys", `{"event.code":"22","dns.question.name":"a.example.net","host.name":"ws1"}`, FormatSysmon},
		{"defender row", `{"Timestamp":"x","DeviceId":"d","RemoteUrl":"u"}`, FormatDefender},
		{"defender streaming", `{"records":[]}`, FormatDefender},
		{"defender array", `[{"DeviceId":"d"}]`, FormatDefender},
		{"defender csv", "Timestamp,DeviceId,RemoteUrl\n", FormatDefender},
		{"generic csv", "\xef\xbb\xbfmachine,time,domain\r\n", FormatCSV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			format, err := Detect([]byte(tt.input))
			if err != nil {
				t.Fatalf("Detect(%q): %v", tt.input, err)
			}
			if format != tt.want {
				t.Errorf("Detect(%q) = %q, want %q", tt.input, format, tt.want)
			}
		})
	}
}

func TestDetectUnknown(t *testing.T) {
	inputs := []string{
		"",
		"\n\n",
		"# a comment\n",
		"hello world\n",
		"a,b,c\n",
		`{"message":"hi"}`,
		`{"ts":1,` + "\n" + `"query":"x"}`,
		"[1,2]",
	}
	for _, input := range inputs {
		_, err := NewReader(strings.NewReader(input), &Options{Name: "in.log"})
		if !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("NewReader(%q) error = %v, want ErrUnknownFormat", input, err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, name := range []string{"auto", "zeek", "zeek-json", "sysmon", "defender", "csv", " CSV "} {
		if _, err := ParseFormat(name); err != nil {
			t.Errorf("ParseFormat(%q): %v", name, err)
		}
	}
	if _, err := ParseFormat("syslog"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("ParseFormat(syslog) error = %v, want ErrUnknownFormat", err)
	}
	if _, err := NewReader(strings.NewReader(""), &Options{Format: "syslog"}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("NewReader with format syslog error = %v, want ErrUnknownFormat", err)
	}
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()

	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const sampleCSV = "domain,machine,time\n" +
	"a.example.com,m1,2024-01-02T03:04:05Z\n" +
	"b.example.com,m2,2024-01-02T03:04:06Z\n" +
	"c.example.com,m3,2024-01-02T03:04:07Z\n"

func TestReaderGzip(t *testing.T) {
	plain := readAll(t, []byte(sampleCSV), nil)
	compressed := readAll(t, gzipBytes(t, []byte(sampleCSV)), nil)
	if diff := cmp.Diff(plain, compressed); diff != "" {
		t.Errorf("gzip input mismatch (-want +got):\n%s", diff)
	}
	if len(plain.Events) != 3 {
		t.Errorf("read %d events, want 3", len(plain.Events))
	}
}

func TestReaderBadGzip(t *testing.T) {
	t.Run("bad header", func(t *testing.T) {
		_, err := NewReader(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0, 0}), &Options{Name: "bad.gz"})
		if err == nil || !strings.Contains(err.Error(), "unreadable gzip") {
			t.Errorf("NewReader error = %v, want an unreadable gzip error", err)
		}
	})

	t.Run("truncated stream", func(t *testing.T) {
		big := strings.Repeat("x.example.com,m1,2024-01-02T03:04:05Z\n", 20000)
		data := gzipBytes(t, []byte("domain,machine,time\n"+big))
		r, err := NewReader(bytes.NewReader(data[:len(data)/2]), &Options{Name: "cut.gz"})
		if err != nil {
			t.Fatalf("NewReader: %v", err)
		}
		for {
			_, err = r.Next()
			var skip *SkipError
			if err != nil && !errors.As(err, &skip) {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			t.Fatal("Next reached EOF on a truncated gzip stream, want an error")
		}
	})
}

func TestReaderLineTooLong(t *testing.T) {
	input := sampleCSV + strings.Repeat("z", 300) + ".example.com,m4,2024-01-02T03:04:08Z\n" + "d.example.com,m5,2024-01-02T03:04:09Z\n"
	g := readAll(t, []byte(input), &Options{MaxLineBytes: 100})

	want := []string{"5:line_too_long"}
	if diff := cmp.Diff(want, g.Skips); diff != "" {
		t.Errorf("skips mismatch (-want +got):\n%s", diff)
	}
	if len(g.Events) != 4 {
		t.Errorf("read %d events, want 4", len(g.Events))
	}
}

func TestReaderEventOffsets(t *testing.T) {
	r, err := NewReader(strings.NewReader(sampleCSV), nil)
	if err != nil {
		t.Fatal(err)
	}

	var offsets, lines []int64
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, e.Offset)
		lines = append(lines, e.Line)
	}

	header := int64(len("domain,machine,time\n"))
	row := int64(len("a.example.com,m1,2024-01-02T03:04:05Z\n"))
	if diff := cmp.Diff([]int64{header + row, header + 2*row, header + 3*row}, offsets); diff != "" {
		t.Errorf("offsets mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{2, 3, 4}, lines); diff != "" {
		t.Errorf("lines mismatch (-want +got):\n%s", diff)
	}
	if got := r.LinesRead(); got != 4 {
		t.Errorf("LinesRead() = %d, want 4", got)
	}
}

func TestReaderUnterminatedLastLine(t *testing.T) {
	input := strings.TrimSuffix(sampleCSV, "\n")
	r, err := NewReader(strings.NewReader(input), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := drain(t, r)

	if len(g.Events) != 3 {
		t.Errorf("read %d events, want 3", len(g.Events))
	}
	wantOffset := int64(strings.LastIndex(input, "\n") + 1)
	if got := r.Position().Offset; got != wantOffset {
		t.Errorf("Position().Offset = %d, want %d (before the unterminated line)", got, wantOffset)
	}
}

func TestReaderFollowLeavesPartialLine(t *testing.T) {
	// The last line is cut in the middle of its time, as a producer that
	// is still writing it leaves it.
	complete := strings.TrimSuffix(sampleCSV, "c.example.com,m3,2024-01-02T03:04:07Z\n")
	input := complete + "c.example.com,m3,2024-01-0"
	r, err := NewReader(strings.NewReader(input), &Options{Name: "test", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	g := drain(t, r)

	want := got{Events: []string{
		"a.example.com m1 2024-01-02T03:04:05Z",
		"b.example.com m2 2024-01-02T03:04:06Z",
	}}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("read with Follow mismatch (-want +got):\n%s", diff)
	}
	if got := r.LinesRead(); got != 3 {
		t.Errorf("LinesRead() = %d, want 3 (the partial line is not counted)", got)
	}
	wantPos := Position{Offset: int64(len(complete)), Line: 3, HeaderOffset: 0}
	if diff := cmp.Diff(wantPos, r.Position()); diff != "" {
		t.Errorf("Position() mismatch (-want +got):\n%s", diff)
	}

	// The next pass resumes before the line, which is now complete.
	input = complete + "c.example.com,m3,2024-01-02T03:04:07Z\n"
	src := strings.NewReader(input)
	r, err = NewReader(src, &Options{Name: "test", Follow: true, Start: wantPos})
	if err != nil {
		t.Fatal(err)
	}
	want = got{Events: []string{"c.example.com m3 2024-01-02T03:04:07Z"}}
	if diff := cmp.Diff(want, drain(t, r)); diff != "" {
		t.Errorf("resumed read mismatch (-want +got):\n%s", diff)
	}
}

func TestDetectOtherECSModules(t *testing.T) {
	// Filebeat's Zeek module and Packetbeat write dns.question.name too,
	// but their host is the sensor, not the machine that asked.
	inputs := []string{
		`{"event":{"module":"zeek","dataset":"zeek.dns"},"dns":{"question":{"name":"a.example.net"}}}`,
		`{"event":{"dataset":"dns"},"dns":{"question":{"name":"a.example.net"}}}`,
	}
	for _, input := range inputs {
		if format, err := Detect([]byte(input)); err == nil {
			t.Errorf("Detect(%s) = %q, want ErrUnknownFormat", input, format)
		}
	}
}

func TestSkipDetailsInPlainWords(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		input  string
		want   string
	}{
		{"json number", FormatZeekJSON, "42\n", "a JSON number, not an object"},
		{"json array", FormatSysmon, "[1,2]\n", "a JSON array, not an object"},
		{"json string", FormatZeekJSON, `"text"` + "\n", "a JSON string, not an object"},
		{"json cut short", FormatZeekJSON, `{"ts":1` + "\n", "ends before the JSON object is complete"},
		{"json syntax", FormatZeekJSON, "{ts:1}\n", "invalid JSON at byte 2"},
		{"defender array of numbers", FormatDefender, `{"records":5}` + "\n", "records is not a JSON array"},
		{"time object", FormatZeekJSON, `{"ts":{"a":1},"id.orig_h":"m","query":"a.example.com"}` + "\n", "a JSON object, not a number or string"},
		{"csv quote", FormatCSV, "domain,machine,time\n" + `a.example.com,m"1,2024-01-02T03:04:05Z` + "\n", `a quote (") inside a field that does not start with one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tt.input), &Options{Format: tt.format})
			if err != nil {
				t.Fatal(err)
			}

			var details []string
			for {
				_, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				var skip *SkipError
				if !errors.As(err, &skip) {
					t.Fatalf("Next returned %v, want a *SkipError", err)
				}
				details = append(details, skip.Detail)
			}
			if len(details) != 1 {
				t.Fatalf("got skip details %q, want exactly one", details)
			}
			if !strings.Contains(details[0], tt.want) {
				t.Errorf("skip detail %q lacks %q", details[0], tt.want)
			}
			for _, internal := range []string{"Go value", "interface {}", "json:", "map["} {
				if strings.Contains(details[0], internal) {
					t.Errorf("skip detail %q contains Go internals %q", details[0], internal)
				}
			}
		})
	}
}

func TestTimeErrorListsForms(t *testing.T) {
	input := "domain,machine,time\na.example.com,m1,01/02/2024 03:04\n"
	r, err := NewReader(strings.NewReader(input), &Options{Format: FormatCSV})
	if err != nil {
		t.Fatal(err)
	}

	_, err = r.Next()
	var skip *SkipError
	if !errors.As(err, &skip) || skip.Reason != ReasonInvalidTime {
		t.Fatalf("Next returned %v, want an invalid_time skip", err)
	}
	for _, want := range []string{`"01/02/2024 03:04"`, "RFC 3339", "2024-03-01 14:00:00", "UTC", "epoch seconds", "milliseconds"} {
		if !strings.Contains(skip.Detail, want) {
			t.Errorf("time error %q lacks %q", skip.Detail, want)
		}
	}
}

func TestTimeFormsAccepted(t *testing.T) {
	tests := []struct {
		input string
		want  string
	}{
		{"2024-03-01T14:00:00Z", "2024-03-01T14:00:00Z"},
		{"2024-03-01T15:00:00+01:00", "2024-03-01T14:00:00Z"},
		{"2024-03-01 14:00:00", "2024-03-01T14:00:00Z"},
		{"2024-03-01 14:00:00.25", "2024-03-01T14:00:00.25Z"},
		{"2024-03-01T14:00:00.5", "2024-03-01T14:00:00.5Z"},
		{"Mar 1, 2024 2:00:00 PM", "2024-03-01T14:00:00Z"},
		{"3/1/2024 2:00:00 PM", "2024-03-01T14:00:00Z"},
		{"1709301600", "2024-03-01T14:00:00Z"},
		{"1709301600.5", "2024-03-01T14:00:00.5Z"},
		{"1709301600000", "2024-03-01T14:00:00Z"},
		{"1709301600000000", "2024-03-01T14:00:00Z"},
		{"1709301600000000000", "2024-03-01T14:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			at, err := parseTime(tt.input)
			if err != nil {
				t.Fatalf("parseTime(%q): %v", tt.input, err)
			}
			if got := at.Format(time.RFC3339Nano); got != tt.want {
				t.Errorf("parseTime(%q) = %s, want %s", tt.input, got, tt.want)
			}
		})
	}
}

func TestTimeBeforeEpochSkipped(t *testing.T) {
	input := "domain,machine,time\n" +
		"a.example.com,m1,0001-01-01 0:00:00\n" +
		"a.example.com,m1,1969-12-31T23:59:59.999Z\n" +
		"a.example.com,m1,-1\n" +
		"a.example.com,m1,-0.5\n" +
		"a.example.com,m1,0\n"
	r, err := NewReader(strings.NewReader(input), &Options{Format: FormatCSV})
	if err != nil {
		t.Fatal(err)
	}

	for line := int64(2); line <= 5; line++ {
		_, err := r.Next()
		var skip *SkipError
		if !errors.As(err, &skip) || skip.Reason != ReasonInvalidTime || skip.Line != line {
			t.Fatalf("line %d: Next returned %v, want an invalid_time skip", line, err)
		}
		if !strings.Contains(skip.Detail, "before 1970-01-01T00:00:00Z") {
			t.Errorf("line %d: detail %q does not name the earliest time", line, skip.Detail)
		}
	}

	e, err := r.Next()
	if err != nil {
		t.Fatalf("Next at epoch 0 failed: %v", err)
	}
	if !e.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("epoch 0 read as %s", e.Time.Format(time.RFC3339Nano))
	}
}
