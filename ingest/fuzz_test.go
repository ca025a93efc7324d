package ingest

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// checkReader reads input to the end and checks what must hold for any
// input: no panic, every event complete, offsets and lines in order and
// inside the input.
func checkReader(t *testing.T, input []byte, format Format) {
	r, err := NewReader(bytes.NewReader(input), &Options{Format: format, MaxLineBytes: 1 << 12})
	if err != nil {
		return
	}

	var lastOffset, lastLine int64
	for i := 0; ; i++ {
		if i > len(input)+1000 {
			t.Fatalf("more than %d results from %d bytes", i, len(input))
		}

		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var skip *SkipError
		if errors.As(err, &skip) {
			if skip.Reason == "" || skip.Line < lastLine {
				t.Fatalf("skip %+v after line %d", skip, lastLine)
			}
			lastLine = skip.Line
			continue
		}
		if err != nil {
			return
		}

		if e.Domain == "" || e.Machine == "" || e.Time.Before(time.Unix(0, 0)) {
			t.Fatalf("incomplete event %+v", e)
		}
		if e.Offset < lastOffset || e.Line < lastLine {
			t.Fatalf("event at line %d offset %d after line %d offset %d", e.Line, e.Offset, lastLine, lastOffset)
		}
		lastOffset, lastLine = e.Offset, e.Line
	}

	if pos := r.Position(); pos.Offset > int64(len(input)) {
		t.Fatalf("Position().Offset = %d beyond the %d-byte input", pos.Offset, len(input))
	}
}

func FuzzZeekTSV(f *testing.F) {
	f.Add([]byte(zeekDNSHeader + "1521911720.865716\tC1\t192.0.2.1\t53\twww.example.com\n"))
	f.Add([]byte("#separator \\x7c\n#fields|ts|id.orig_h|query\n1|a|b\\x2d\n"))
	f.Add([]byte("#fields\tts\tid.orig_h\thost\n1e3\t192.0.2.1\t[::1]:80\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		checkReader(t, input, FormatZeek)
	})
}

func FuzzZeekJSON(f *testing.F) {
	f.Add([]byte(`{"ts":1521911720.865716,"id":{"orig_h":"192.0.2.1"},"query":"www.example.com"}` + "\n"))
	f.Add([]byte(`{"_path":"http","ts":"2018-03-24T17:15:20Z","id_orig_h":"a","host":"b:1"}`))
	f.Fuzz(func(t *testing.T, input []byte) {
		checkReader(t, input, FormatZeekJSON)
	})
}

func FuzzSysmon(f *testing.F) {
	f.Add([]byte(`{"EventID":22,"Hostname":"WS1","UtcTime":"2019-12-05 01:49:47.506","QueryName":"a.example.com"}` + "\n"))
	f.Add([]byte(`{"winlog":{"event_id":"22","computer_name":"c","event_data":{"QueryName":"q","UtcTime":"1"}}}`))
	f.Fuzz(func(t *testing.T, input []byte) {
		checkReader(t, input, FormatSysmon)
	})
}

func FuzzDefender(f *testing.F) {
	f.Add([]byte(`{"records":[{"category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-01-02T03:04:08Z","DeviceId":"d1","RemoteUrl":"https://a.example.org/x"}}]}` + "\n"))
	f.Add([]byte("Timestamp,DeviceId,RemoteUrl\n2024-01-02T03:04:05Z,d1,www.example.com:443\n"))
	f.Add([]byte(`[{"Timestamp":"1704164645","DeviceName":"n","RemoteUrl":"//x"}]`))
	f.Fuzz(func(t *testing.T, input []byte) {
		checkReader(t, input, FormatDefender)
	})
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte(sampleCSV))
	f.Add([]byte("time,domain,machine\n\"1\",\"a,b\",c\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		checkReader(t, input, FormatCSV)
	})
}

func FuzzDetect(f *testing.F) {
	f.Add([]byte(sampleCSV))
	f.Add([]byte(zeekDNSHeader))
	f.Add([]byte(`{"EventID":22}`))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, input []byte) {
		checkReader(t, input, FormatAuto)
	})
}
