package ingest

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lineItem is an event or skip with the line it came from.
type lineItem struct {
	Line int64
	Text string
}

// readItems reads r to the end and returns its items and the position
// after each item.
func readItems(t *testing.T, r *Reader) ([]lineItem, []Position) {
	t.Helper()

	var (
		items     []lineItem
		positions []Position
	)
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return items, positions
		}

		var skip *SkipError
		switch {
		case errors.As(err, &skip):
			items = append(items, lineItem{skip.Line, "skip " + string(skip.Reason)})
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			items = append(items, lineItem{e.Line, eventString(e) + " @" + strconv.FormatInt(e.Offset, 10)})
		}
		positions = append(positions, r.Position())
	}
}

func TestReaderResume(t *testing.T) {
	inputs := []struct {
		name  string
		input string
	}{
		{
			name: "zeek with two header blocks",
			input: zeekDNSHeader +
				"1521911720\tC1\t192.0.2.1\t53\ta.example.com\n" +
				"1521911721\tC2\t192.0.2.2\t53\t-\n" +
				"1521911722\tC3\t192.0.2.3\t53\tb.example.com\n" +
				"#close\t2024-04-12-19-34-07\n" +
				"#separator \\x7c\n" +
				"#fields|ts|id.orig_h|query\n" +
				"1521911723|192.0.2.4|c.example.com\n" +
				"1521911724|192.0.2.5|d.example.com\n",
		},
		{name: "generic csv", input: sampleCSV + "bad line\n" + "e.example.com,m4,2024-01-02T03:04:08Z\n"},
		{
			name: "defender records",
			input: `{"records":[{"category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-01-02T03:04:08Z","DeviceId":"d1","RemoteUrl":"a.example.org"}},` +
				`{"category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-01-02T03:04:09Z","DeviceId":"d2","RemoteUrl":""}},` +
				`{"category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-01-02T03:04:10Z","DeviceId":"d3","RemoteUrl":"b.example.org"}}]}` + "\n" +
				`{"records":[{"category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-01-02T03:04:11Z","DeviceId":"d4","RemoteUrl":"c.example.org"}}]}` + "\n",
		},
	}

	for _, in := range inputs {
		for _, compressed := range []bool{false, true} {
			name := in.name
			data := []byte(in.input)
			if compressed {
				name += " gzip"
				data = gzipBytes(t, data)
			}

			t.Run(name, func(t *testing.T) {
				r, err := NewReader(bytes.NewReader(data), nil)
				if err != nil {
					t.Fatal(err)
				}
				all, positions := readItems(t, r)
				if len(all) < 4 {
					t.Fatalf("read %d items, want at least 4", len(all))
				}

				for i, start := range positions {
					resumed, err := NewReader(bytes.NewReader(data), &Options{Start: start})
					if err != nil {
						t.Fatalf("NewReader at %+v: %v", start, err)
					}
					got, _ := readItems(t, resumed)

					// A position is only ever at a line boundary, so the
					// resumed reader returns exactly the later lines.
					var want []lineItem
					for _, it := range all[:i+1] {
						if it.Line > start.Line {
							want = append(want, it)
						}
					}
					want = append(want, all[i+1:]...)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("resume at %+v mismatch (-want +got):\n%s", start, diff)
					}
				}
			})
		}
	}
}

func TestLinesReadAfterResume(t *testing.T) {
	input := []byte(sampleCSV + "e.example.com,m4,2024-01-02T03:04:08Z\n")
	for _, compressed := range []bool{false, true} {
		name, data := "plain", input
		if compressed {
			name, data = "gzip", gzipBytes(t, input)
		}

		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			readItems(t, r)
			end := r.Position()

			resumed, err := NewReader(bytes.NewReader(data), &Options{Start: end})
			if err != nil {
				t.Fatal(err)
			}
			readItems(t, resumed)
			if got := resumed.LinesRead(); got != 0 {
				t.Errorf("LinesRead after resuming at the end = %d, want 0", got)
			}
		})
	}
}
