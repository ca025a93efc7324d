package ingest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// producerCase is an input written the way a real producer writes it, with
// the events and skips that reading it must give.
type producerCase struct {
	name   string
	format Format
	input  string
	want   got
}

// checkProducerCases reads each case with its format set and again with
// detection, which must agree.
func checkProducerCases(t *testing.T, tests []producerCase) {
	t.Helper()

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := readAll(t, []byte(tt.input), &Options{Name: "test", Format: tt.format})
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("read as %s mismatch (-want +got):\n%s", tt.format, diff)
			}

			auto := readAll(t, []byte(tt.input), &Options{Name: "test"})
			if diff := cmp.Diff(tt.want, auto); diff != "" {
				t.Errorf("read with detection mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestZeekTSVProducerShapes(t *testing.T) {
	// Zeek's ASCII writer opens each file with #separator (its value
	// escaped, after a space), then the other settings after the field
	// separator, #open, #fields and #types, and ends it with #close.
	// Rotated files are often concatenated, so one input holds several
	// header blocks.
	dnsBlock := "#separator \\x09\n" +
		"#set_separator\t,\n" +
		"#empty_field\t(empty)\n" +
		"#unset_field\t-\n" +
		"#path\tdns\n" +
		"#open\t2024-03-01-14-00-00\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\tquery\tanswers\tTTLs\n" +
		"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tstring\tvector[string]\tvector[interval]\n"

	tests := []producerCase{
		{
			name:   "dns with sets and escapes",
			format: FormatZeek,
			input: dnsBlock +
				// Line 9: a vector field whose elements contain the set
				// separator only as an escape.
				"1709301600.000001\tCa1\t10.0.0.5\t51000\t10.0.0.1\t53\tudp\t4711\twww.example.com\t192.0.2.7,cdn\\x2cexample.net\t30.000000,60.000000\n" +
				// Line 10: Zeek writes a literal backslash as two
				// backslashes, so this query is a\x41, not aA.
				"1709301601.250000\tCa2\t10.0.0.6\t51001\t10.0.0.1\t53\tudp\t4712\ta\\\\x41.example.com\t(empty)\t(empty)\n" +
				// Line 11: a query that equals the unset marker is
				// escaped, and an IPv6 client.
				"1709301602.500000\tCa3\t2001:db8::5\t51002\t2001:db8::1\t53\tudp\t4713\t\\x2d\t-\t-\n" +
				// Line 12: a separator inside a value is escaped.
				"1709301603.000000\tCa4\t10.0.0.7\t51003\t10.0.0.1\t53\tudp\t4714\tsp\\x09ace.example.com\t-\t-\n" +
				"1709301604.000000\tCa5\t10.0.0.8\t51004\t10.0.0.1\t53\tudp\t4715\t-\t-\t-\n" +
				"#close\t2024-03-01-15-00-00\n" +
				dnsBlock +
				"1709305200.123456\tCb1\t10.0.0.9\t51005\t10.0.0.1\t53\tudp\t4716\tnext.example.org\t-\t-\n" +
				"#close\t2024-03-01-16-00-00\n",
			want: got{
				Events: []string{
					"www.example.com 10.0.0.5 2024-03-01T14:00:00.000001Z",
					`a\x41.example.com 10.0.0.6 2024-03-01T14:00:01.25Z`,
					"- 2001:db8::5 2024-03-01T14:00:02.5Z",
					"sp\tace.example.com 10.0.0.7 2024-03-01T14:00:03Z",
					"next.example.org 10.0.0.9 2024-03-01T15:00:00.123456Z",
				},
				Skips: []string{"13:missing_domain"},
			},
		},
		{
			name:   "escaped header values",
			format: FormatZeek,
			// The writer escapes white space in the values of
			// #set_separator, #empty_field and #unset_field, but writes
			// the markers themselves into data lines as they are.
			input: "#separator \\x09\n" +
				"#set_separator\t,\n" +
				"#empty_field\tno\\x20value\n" +
				"#unset_field\tnot\\x20set\n" +
				"#path\tdns\n" +
				"#fields\tts\tid.orig_h\tquery\n" +
				"#types\ttime\taddr\tstring\n" +
				"1709301600.000000\t10.0.0.5\tnot set\n" +
				"1709301600.000000\t10.0.0.5\tno value\n" +
				"1709301600.000000\t10.0.0.5\tfine.example.com\n",
			want: got{
				Events: []string{"fine.example.com 10.0.0.5 2024-03-01T14:00:00Z"},
				Skips:  []string{"8:missing_domain", "9:missing_domain"},
			},
		},
		{
			name:   "http host forms",
			format: FormatZeek,
			input: "#separator \\x09\n" +
				"#set_separator\t,\n" +
				"#empty_field\t(empty)\n" +
				"#unset_field\t-\n" +
				"#path\thttp\n" +
				"#open\t2024-03-01-14-00-00\n" +
				"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\ttrans_depth\tmethod\thost\turi\ttags\n" +
				"#types\ttime\tstring\taddr\tport\taddr\tport\tcount\tstring\tstring\tstring\tset[enum]\n" +
				"1709301600.000000\tCh1\t10.0.0.5\t52000\t192.0.2.80\t80\t1\tGET\twww.example.com\t/\t(empty)\n" +
				"1709301601.000000\tCh2\t10.0.0.5\t52001\t192.0.2.80\t8080\t1\tGET\twww.example.com:8080\t/a?b=c\t(empty)\n" +
				"1709301602.000000\tCh3\t10.0.0.5\t52002\t192.0.2.80\t80\t1\tGET\t192.0.2.80\t/\t(empty)\n" +
				"1709301603.000000\tCh4\t10.0.0.5\t52003\t2001:db8::80\t80\t1\tGET\t[2001:db8::80]\t/\t(empty)\n" +
				"1709301604.000000\tCh5\t10.0.0.5\t52004\t2001:db8::80\t8080\t1\tGET\t[2001:db8::80]:8080\t/\t(empty)\n" +
				"1709301605.000000\tCh6\t10.0.0.5\t52005\t192.0.2.80\t80\t1\tGET\t-\t/\t(empty)\n" +
				"#close\t2024-03-01-15-00-00\n",
			want: got{
				Events: []string{
					"www.example.com 10.0.0.5 2024-03-01T14:00:00Z",
					"www.example.com 10.0.0.5 2024-03-01T14:00:01Z",
				},
				Skips: []string{"11:ip_address", "12:ip_address", "13:ip_address", "14:missing_domain"},
			},
		},
		{
			name:   "ssl server name",
			format: FormatZeek,
			input: "#separator \\x09\n" +
				"#set_separator\t,\n" +
				"#empty_field\t(empty)\n" +
				"#unset_field\t-\n" +
				"#path\tssl\n" +
				"#open\t2024-03-01-14-00-00\n" +
				"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tcipher\tserver_name\testablished\n" +
				"#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tbool\n" +
				"1709301600.000000\tCs1\t10.0.0.5\t53000\t192.0.2.43\t443\tTLSv13\tTLS_AES_128_GCM_SHA256\tsecure.example.com\tT\n" +
				"1709301601.000000\tCs2\t10.0.0.5\t53001\t192.0.2.43\t443\tTLSv12\t-\t-\tF\n",
			want: got{
				Events: []string{"secure.example.com 10.0.0.5 2024-03-01T14:00:00Z"},
				Skips:  []string{"10:missing_domain"},
			},
		},
	}
	checkProducerCases(t, tests)
}

func TestPortOnlyHostSkipped(t *testing.T) {
	tests := []producerCase{
		{
			name:   "zeek http tsv",
			format: FormatZeek,
			input: "#fields\tts\tid.orig_h\thost\n" +
				"1709301600\t10.0.0.5\t:8080\n" +
				"1709301601\t10.0.0.5\t[]:8080\n" +
				"1709301602\t10.0.0.5\twww.example.com:8080\n",
			want: got{
				Events: []string{"www.example.com 10.0.0.5 2024-03-01T14:00:02Z"},
				Skips:  []string{"2:missing_domain", "3:missing_domain"},
			},
		},
		{
			name:   "zeek http json",
			format: FormatZeekJSON,
			input:  `{"_path":"http","ts":1709301600,"id.orig_h":"10.0.0.5","host":":80"}` + "\n",
			want:   got{Skips: []string{"1:missing_domain"}},
		},
	}
	checkProducerCases(t, tests)
}

func TestZeekJSONProducerShapes(t *testing.T) {
	tests := []producerCase{
		{
			name:   "json timestamps",
			format: FormatZeekJSON,
			// JSON::TS_EPOCH writes a double, which may end in ".0",
			// JSON::TS_MILLIS an integer and JSON::TS_ISO8601 a UTC
			// string with microseconds. Unset fields are left out.
			input: `{"ts":1709301600.123456,"uid":"Cj1","id.orig_h":"10.0.0.5","id.orig_p":51000,"id.resp_h":"10.0.0.1","id.resp_p":53,"proto":"udp","query":"epoch.example.com","rejected":false}` + "\n" +
				`{"ts":1709301601.0,"uid":"Cj2","id.orig_h":"10.0.0.5","id.orig_p":51001,"id.resp_h":"10.0.0.1","id.resp_p":53,"proto":"udp","query":"whole.example.com"}` + "\n" +
				`{"ts":1709301602123,"uid":"Cj3","id.orig_h":"10.0.0.5","id.orig_p":51002,"id.resp_h":"10.0.0.1","id.resp_p":53,"proto":"udp","query":"millis.example.com"}` + "\n" +
				`{"ts":"2024-03-01T14:00:03.000500Z","uid":"Cj4","id.orig_h":"10.0.0.5","id.orig_p":51003,"id.resp_h":"10.0.0.1","id.resp_p":53,"proto":"udp","query":"iso.example.com","answers":["192.0.2.1"],"TTLs":[60.0]}` + "\n" +
				`{"ts":1709301604.5,"uid":"Cj5","id.orig_h":"10.0.0.5","id.orig_p":51004,"id.resp_h":"10.0.0.1","id.resp_p":53,"proto":"udp"}` + "\n",
			want: got{
				Events: []string{
					"epoch.example.com 10.0.0.5 2024-03-01T14:00:00.123456Z",
					"whole.example.com 10.0.0.5 2024-03-01T14:00:01Z",
					"millis.example.com 10.0.0.5 2024-03-01T14:00:02.123Z",
					"iso.example.com 10.0.0.5 2024-03-01T14:00:03.0005Z",
				},
				Skips: []string{"5:missing_domain"},
			},
		},
		{
			name:   "corelight json streaming",
			format: FormatZeekJSON,
			// json-streaming-logs adds _path (the stream without its
			// json_streaming_ prefix) and _write_ts and sets TS_ISO8601.
			// A deployment may add _system_name.
			input: `{"_path":"dns","_system_name":"sensor-1","_write_ts":"2024-03-01T14:00:05.000000Z","ts":"2024-03-01T14:00:00.250000Z","uid":"Ck1","id.orig_h":"10.0.0.5","id.orig_p":51000,"id.resp_h":"10.0.0.1","id.resp_p":53,"query":"stream.example.com"}` + "\n" +
				`{"_path":"ssl","_system_name":"sensor-1","_write_ts":"2024-03-01T14:00:05.000000Z","ts":"2024-03-01T14:00:01.000000Z","uid":"Ck2","id.orig_h":"10.0.0.6","id.orig_p":53000,"id.resp_h":"192.0.2.43","id.resp_p":443,"server_name":"tls.example.com"}` + "\n" +
				`{"_path":"http","_system_name":"sensor-1","_write_ts":"2024-03-01T14:00:05.000000Z","ts":"2024-03-01T14:00:02.000000Z","uid":"Ck3","id.orig_h":"10.0.0.7","id.orig_p":52000,"id.resp_h":"2001:db8::80","id.resp_p":80,"host":"[2001:db8::80]","method":"GET"}` + "\n" +
				`{"_path":"conn","_system_name":"sensor-1","_write_ts":"2024-03-01T14:00:05.000000Z","ts":"2024-03-01T14:00:03.000000Z","uid":"Ck4","id.orig_h":"10.0.0.8","proto":"tcp"}` + "\n",
			want: got{
				Events: []string{
					"stream.example.com 10.0.0.5 2024-03-01T14:00:00.25Z",
					"tls.example.com 10.0.0.6 2024-03-01T14:00:01Z",
				},
				Skips: []string{"3:ip_address", "4:other_event"},
			},
		},
		{
			name:   "key styles",
			format: FormatZeekJSON,
			// Flat dotted keys are Zeek's default. Renamed fields give
			// id_orig_h, and converters that rebuild records nest them.
			input: `{"ts":1709301600.0,"uid":"Cm1","id_orig_h":"10.0.0.5","id_orig_p":51000,"id_resp_h":"10.0.0.1","id_resp_p":53,"query":"underscore.example.com"}` + "\n" +
				`{"ts":1709301601.0,"uid":"Cm2","id":{"orig_h":"10.0.0.6","orig_p":51001,"resp_h":"10.0.0.1","resp_p":53},"query":"nested.example.com"}` + "\n",
			want: got{
				Events: []string{
					"underscore.example.com 10.0.0.5 2024-03-01T14:00:00Z",
					"nested.example.com 10.0.0.6 2024-03-01T14:00:01Z",
				},
			},
		},
	}
	checkProducerCases(t, tests)
}

func TestSysmonProducerShapes(t *testing.T) {
	tests := []producerCase{
		{
			name:   "nxlog im_msvistalog",
			format: FormatSysmon,
			// NXLog's to_json() writes the System fields (Hostname,
			// EventID as a number, EventTime in local time without a zone)
			// beside the event data fields (UtcTime, QueryName).
			input: `{"EventTime":"2024-03-01 09:00:00","Hostname":"WS1.corp.example","Keywords":-9223372036854775808,"EventType":"INFO","SeverityValue":2,"Severity":"INFO","EventID":22,"SourceName":"Microsoft-Windows-Sysmon","Task":22,"RecordNumber":1001,"Channel":"Microsoft-Windows-Sysmon/Operational","Category":"Dns query (rule: DnsQuery)","RuleName":"-","UtcTime":"2024-03-01 14:00:00.123","ProcessId":"4321","QueryName":"www.example.com.","QueryStatus":"0","QueryResults":"::ffff:192.0.2.1;","Image":"C:\\Windows\\System32\\svchost.exe","SourceModuleType":"im_msvistalog"}` + "\n" +
				`{"EventTime":"2024-03-01 09:00:01","Hostname":"WS1.corp.example","EventID":22,"SourceName":"Microsoft-Windows-Sysmon","Channel":"Microsoft-Windows-Sysmon/Operational","UtcTime":"2024-03-01 14:00:01.000","QueryName":"","QueryStatus":"9003","SourceModuleType":"im_msvistalog"}` + "\n" +
				`{"EventTime":"2024-03-01 09:00:02","Hostname":"WS1.corp.example","EventID":3,"SourceName":"Microsoft-Windows-Sysmon","Channel":"Microsoft-Windows-Sysmon/Operational","UtcTime":"2024-03-01 14:00:02.000","DestinationIp":"192.0.2.1","SourceModuleType":"im_msvistalog"}` + "\n",
			want: got{
				Events: []string{"www.example.com. WS1.corp.example 2024-03-01T14:00:00.123Z"},
				Skips:  []string{"2:missing_domain", "3:other_event"},
			},
		},
		{
			name:   "winlogbeat 7 with the sysmon processor",
			format: FormatSysmon,
			// Winlogbeat 7's script processor keeps winlog.event_data,
			// and turns UtcTime into an RFC 3339 time in place. Here
			// winlog.event_id and event.code are numbers.
			input: `{"@timestamp":"2024-03-01T14:00:00.456Z","event":{"code":22,"kind":"event","module":"sysmon","provider":"Microsoft-Windows-Sysmon"},"host":{"name":"ws2"},"winlog":{"channel":"Microsoft-Windows-Sysmon/Operational","computer_name":"WS2.corp.example","event_id":22,"provider_name":"Microsoft-Windows-Sysmon","event_data":{"RuleName":"-","UtcTime":"2024-03-01T14:00:00.123Z","QueryName":"beat7.example.com","QueryStatus":"0"}},"dns":{"question":{"name":"beat7.example.com"}}}` + "\n",
			want: got{
				Events: []string{"beat7.example.com WS2.corp.example 2024-03-01T14:00:00.123Z"},
			},
		},
		{
			name:   "winlogbeat 8 with the ingest pipeline",
			format: FormatSysmon,
			// The Sysmon ingest pipeline moves the event data into ECS
			// fields and drops winlog.event_data, so the time is only in
			// @timestamp and the IDs are strings.
			input: `{"@timestamp":"2024-03-01T14:00:01.239Z","dns":{"question":{"name":"beat8.example.com","registered_domain":"example.com"}},"event":{"code":"22","kind":"event","module":"sysmon"},"host":{"name":"ws3"},"winlog":{"channel":"Microsoft-Windows-Sysmon/Operational","computer_name":"WS3.corp.example","event_id":"22","record_id":"66"}}` + "\n",
			want: got{
				Events: []string{"beat8.example.com WS3.corp.example 2024-03-01T14:00:01.239Z"},
			},
		},
		{
			name:   "flat dotted ecs keys",
			format: FormatSysmon,
			// Exports of Elasticsearch documents may flatten ECS objects
			// into dotted keys.
			input: `{"@timestamp":"2024-03-01T14:00:02.500Z","winlog.channel":"Microsoft-Windows-Sysmon/Operational","winlog.computer_name":"WS4.corp.example","winlog.event_id":"22","winlog.event_data.QueryName":"flat.example.com","winlog.event_data.UtcTime":"2024-03-01 14:00:02.400"}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:03.000Z","winlog.channel":"Microsoft-Windows-Sysmon/Operational","winlog.computer_name":"WS4.corp.example","winlog.event_id":"1","winlog.event_data.Image":"C:\\Windows\\notepad.exe"}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:04.000Z","winlog":{"computer_name":"WS4.corp.example","event_id":"22","event_data.QueryName":"mixed.example.com"}}` + "\n",
			want: got{
				Events: []string{
					"flat.example.com WS4.corp.example 2024-03-01T14:00:02.4Z",
					"mixed.example.com WS4.corp.example 2024-03-01T14:00:04Z",
				},
				Skips: []string{"2:other_event"},
			},
		},
		{
			name:   "classic winlogbeat 6",
			format: FormatSysmon,
			// Winlogbeat 5.x and 6.x write the System fields at the top
			// level in snake case and the event data under event_data.
			// UtcTime is the query time, @timestamp the time of writing.
			input: `{"@timestamp":"2024-03-01T14:00:05.000Z","beat":{"hostname":"collector","version":"6.8.0"},"computer_name":"WS1.corp.example","event_id":22,"source_name":"Microsoft-Windows-Sysmon","log_name":"Microsoft-Windows-Sysmon/Operational","record_number":"4021","event_data":{"RuleName":"-","UtcTime":"2024-03-01 14:00:00.123","ProcessId":"2120","QueryName":"evil.example.net","QueryStatus":"0","Image":"C:\\Windows\\System32\\svchost.exe"},"level":"Information","type":"wineventlog"}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:06.000Z","computer_name":"WS1.corp.example","event_id":1,"source_name":"Microsoft-Windows-Sysmon","log_name":"Microsoft-Windows-Sysmon/Operational","event_data":{"UtcTime":"2024-03-01 14:00:06.000","Image":"C:\\Windows\\notepad.exe"}}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:07.250Z","computer_name":"WS5.corp.example","event_id":"22","source_name":"Microsoft-Windows-Sysmon","event_data":{"QueryName":"stamp.example.net"}}` + "\n" +
				`{"@timestamp":"2024-03-01T14:00:08.000Z","computer_name":"WS1.corp.example","event_id":22,"source_name":"Microsoft-Windows-Security-Auditing","event_data":{"QueryName":"other.example.net"}}` + "\n",
			want: got{
				Events: []string{
					"evil.example.net WS1.corp.example 2024-03-01T14:00:00.123Z",
					"stamp.example.net WS5.corp.example 2024-03-01T14:00:07.25Z",
				},
				Skips: []string{"2:other_event", "4:other_event"},
			},
		},
	}
	checkProducerCases(t, tests)
}

func TestDetectClassicWinlogbeat(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{"source_name and event_id", `{"computer_name":"WS1","event_id":1,"source_name":"Microsoft-Windows-Sysmon","event_data":{"Image":"x.exe"}}`},
		{"event_data.QueryName", `{"computer_name":"WS1","event_data":{"QueryName":"a.example.com"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			format, err := Detect([]byte(tt.line + "\n"))
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if format != FormatSysmon {
				t.Errorf("Detect = %s, want %s", format, FormatSysmon)
			}
		})
	}
}

func TestDefenderProducerShapes(t *testing.T) {
	tests := []producerCase{
		{
			name:   "portal csv export",
			format: FormatDefender,
			// A CSV export may start with a byte order mark and end its
			// lines with CRLF, and it quotes a Timestamp that contains a
			// comma.
			input: "\xef\xbb\xbfTimestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,RemoteUrl,LocalIP,LocalPort,Protocol\r\n" +
				"2024-03-01T14:00:00.1234567Z,4f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e,pc1.corp.example,ConnectionSuccess,192.0.2.10,443,www.example.com,10.0.0.5,50000,Tcp\r\n" +
				"\"Mar 1, 2024 2:00:01 PM\",4f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e,pc1.corp.example,ConnectionSuccess,192.0.2.11,8443,api.example.net:8443,10.0.0.5,50001,Tcp\r\n" +
				"2024-03-01T14:00:02Z,,pc2.corp.example,ConnectionSuccess,192.0.2.12,443,https://login.example.org/path/a%zz?next=%E0%A4%A,10.0.0.6,50002,Tcp\r\n" +
				"2024-03-01T14:00:03Z,9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d,pc3.corp.example,ConnectionSuccess,2001:db8::443,443,[2001:db8::443]:443,2001:db8::5,50003,Tcp\r\n" +
				"2024-03-01T14:00:04Z,9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d,pc3.corp.example,ConnectionSuccess,2001:db8::443,443,2001:db8::443,2001:db8::5,50004,Tcp\r\n" +
				"2024-03-01T14:00:05Z,9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d,pc3.corp.example,ConnectionSuccess,192.0.2.13,443,,10.0.0.7,50005,Tcp\r\n" +
				"2024-03-01T14:00:06Z,9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d,pc3.corp.example,ConnectionSuccess,192.0.2.14,443,http://user@Mixed.Example.com:8080/x#top,10.0.0.7,50006,Tcp\r\n",
			want: got{
				Events: []string{
					"www.example.com 4f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e 2024-03-01T14:00:00.1234567Z",
					"api.example.net 4f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e 2024-03-01T14:00:01Z",
					"login.example.org pc2.corp.example 2024-03-01T14:00:02Z",
					"Mixed.Example.com 9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d 2024-03-01T14:00:06Z",
				},
				Skips: []string{"5:ip_address", "6:ip_address", "7:missing_domain"},
			},
		},
		{
			name:   "advanced hunting api results",
			format: FormatDefender,
			// The Defender for Endpoint API returns Schema and Results,
			// the Microsoft Graph runHuntingQuery action schema and
			// results.
			input: `{"Schema":[{"Name":"Timestamp","Type":"DateTime"},{"Name":"DeviceId","Type":"String"},{"Name":"RemoteUrl","Type":"String"}],"Results":[{"Timestamp":"2024-03-01T14:00:00.1234567Z","DeviceId":"d1","DeviceName":"pc1.corp.example","RemoteUrl":"old-api.example.com"}]}` + "\n" +
				`{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults","schema":[{"name":"Timestamp","type":"DateTime"}],"results":[{"Timestamp":"2024-03-01T14:00:01.5Z","DeviceId":"d2","DeviceName":"pc2.corp.example","RemoteUrl":"graph-api.example.com","RemoteIP":"192.0.2.1"},{"Timestamp":"2024-03-01T14:00:02Z","DeviceId":"d2","DeviceName":"pc2.corp.example","RemoteUrl":"","RemoteIP":"192.0.2.2"}]}` + "\n",
			want: got{
				Events: []string{
					"old-api.example.com d1 2024-03-01T14:00:00.1234567Z",
					"graph-api.example.com d2 2024-03-01T14:00:01.5Z",
				},
				Skips: []string{"2:missing_domain"},
			},
		},
		{
			name:   "graph api results first",
			format: FormatDefender,
			input:  `{"schema":[],"results":[{"Timestamp":"2024-03-01T14:00:01Z","DeviceId":"d2","RemoteUrl":"graph-api.example.com"}]}` + "\n",
			want: got{
				Events: []string{"graph-api.example.com d2 2024-03-01T14:00:01Z"},
			},
		},
		{
			name:   "streaming api event hub",
			format: FormatDefender,
			input: `{"records":[` +
				`{"time":"2024-03-01T14:00:05.0000000Z","tenantId":"11111111-2222-3333-4444-555555555555","operationName":"Publish","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-03-01T14:00:00.1234567Z","DeviceId":"d1","DeviceName":"pc1.corp.example","ActionType":"ConnectionSuccess","RemoteIP":"192.0.2.10","RemotePort":443,"RemoteUrl":"hub.example.com","MachineGroup":null}},` +
				`{"time":"2024-03-01T14:00:05.0000000Z","tenantId":"11111111-2222-3333-4444-555555555555","operationName":"Publish","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-03-01T14:00:01Z","DeviceId":"d1","DeviceName":"pc1.corp.example","ActionType":"InboundConnectionAccepted","RemoteIP":"192.0.2.11","RemotePort":50000,"RemoteUrl":""}},` +
				`{"time":"2024-03-01T14:00:05.0000000Z","tenantId":"11111111-2222-3333-4444-555555555555","operationName":"Publish","category":"AdvancedHunting-DeviceFileEvents","properties":{"Timestamp":"2024-03-01T14:00:02Z","DeviceId":"d1","FileName":"a.txt"}}` +
				`]}` + "\n",
			want: got{
				Events: []string{"hub.example.com d1 2024-03-01T14:00:00.1234567Z"},
				Skips:  []string{"1:missing_domain", "1:other_event"},
			},
		},
		{
			name:   "streaming api storage account",
			format: FormatDefender,
			// A storage account blob holds one record per line, without
			// the records array.
			input: `{"time":"2024-03-01T14:00:05.0000000Z","tenantId":"11111111-2222-3333-4444-555555555555","operationName":"Publish","category":"AdvancedHunting-DeviceNetworkEvents","properties":{"Timestamp":"2024-03-01T14:00:00Z","DeviceId":"d1","DeviceName":"pc1.corp.example","RemoteUrl":"https://blob.example.com/x"}}` + "\n",
			want: got{
				Events: []string{"blob.example.com d1 2024-03-01T14:00:00Z"},
			},
		},
	}
	checkProducerCases(t, tests)
}

func TestGenericCSVProducerShapes(t *testing.T) {
	tests := []producerCase{
		{
			name:   "spreadsheet export",
			format: FormatCSV,
			// Spreadsheet programs may write a byte order mark, CRLF and
			// quoted header names in any case, and double a quote inside
			// a field.
			input: "\xef\xbb\xbf\"Machine\",\"TIME\",\"Domain\"\r\n" +
				"\"host-a\",\"2024-03-01 14:00:00\",\"www.example.com\"\r\n" +
				"host-b,2024-03-01T14:00:01Z,\"odd\"\"quote.example.com\"\r\n" +
				"host-c,1709301602,plain.example.com\r\n",
			want: got{
				Events: []string{
					"www.example.com host-a 2024-03-01T14:00:00Z",
					`odd"quote.example.com host-b 2024-03-01T14:00:01Z`,
					"plain.example.com host-c 2024-03-01T14:00:02Z",
				},
			},
		},
	}
	checkProducerCases(t, tests)
}

func TestSysmonOtherProvider(t *testing.T) {
	// NXLog and Winlogbeat read every channel they are given, and event ID
	// 22 exists outside Sysmon too.
	input := `{"EventID":22,"SourceName":"Microsoft-Windows-Sysmon","Hostname":"WS1.corp.example","UtcTime":"2024-03-01 14:00:00.000","QueryName":"www.example.com"}` + "\n" +
		`{"EventID":22,"SourceName":"Microsoft-Windows-Kernel-General","Hostname":"WS1.corp.example","Channel":"System"}` + "\n" +
		`{"@timestamp":"2024-03-01T14:00:01Z","event":{"code":"22","provider":"Microsoft-Windows-Kernel-Power"},"winlog":{"event_id":"22","provider_name":"Microsoft-Windows-Kernel-Power","computer_name":"WS1.corp.example"}}` + "\n"

	g := readAll(t, []byte(input), &Options{Format: FormatSysmon})
	want := got{
		Events: []string{"www.example.com WS1.corp.example 2024-03-01T14:00:00Z"},
		Skips:  []string{"2:other_event", "3:other_event"},
	}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("read mismatch (-want +got):\n%s", diff)
	}
}

func TestURLHost(t *testing.T) {
	tests := []struct {
		remoteURL string
		want      string
	}{
		{"www.example.com", "www.example.com"},
		{"www.example.com:443", "www.example.com"},
		{"https://www.example.com/a/b?c=d#e", "www.example.com"},
		{"HTTP://User:Secret@Www.Example.com:8080/", "Www.Example.com"},
		{"https://www.example.com/bad%zzescape", "www.example.com"},
		{"www.example.com:https", "www.example.com"},
		{"www.example.com/path with space", "www.example.com"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"http://[2001:db8::1]/x", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"192.0.2.1:80", "192.0.2.1"},
		{" www.example.com. ", "www.example.com."},
		{"https:///path", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := urlHost(tt.remoteURL); got != tt.want {
			t.Errorf("urlHost(%q) = %q, want %q", tt.remoteURL, got, tt.want)
		}
	}
}

func TestIPAddressHostsSkipped(t *testing.T) {
	tests := []producerCase{
		{
			name:   "zeek http tsv",
			format: FormatZeek,
			input: "#separator \\x09\n" +
				"#path\thttp\n" +
				"#fields\tts\tuid\tid.orig_h\thost\n" +
				"1709301600\tC1\t10.0.0.5\t1.2.3.4\n" +
				"1709301601\tC2\t10.0.0.5\t1.2.3.4:8080\n" +
				"1709301602\tC3\t10.0.0.5\t[2001:db8::1]:8080\n" +
				"1709301603\tC4\t10.0.0.5\twww.example.com\n",
			want: got{
				Events: []string{"www.example.com 10.0.0.5 2024-03-01T14:00:03Z"},
				Skips:  []string{"4:ip_address", "5:ip_address", "6:ip_address"},
			},
		},
		{
			name:   "zeek ssl json",
			format: FormatZeekJSON,
			input:  `{"_path":"ssl","ts":1709301600,"id.orig_h":"10.0.0.5","server_name":"192.0.2.7"}` + "\n",
			want:   got{Skips: []string{"1:ip_address"}},
		},
		{
			name:   "defender remote url",
			format: FormatDefender,
			input: `{"Timestamp":"2024-03-01T14:00:00Z","DeviceId":"d1","RemoteUrl":"http://1.2.3.4/"}` + "\n" +
				`{"Timestamp":"2024-03-01T14:00:01Z","DeviceId":"d1","RemoteUrl":"https://[2001:db8::2]:443/x"}` + "\n" +
				`{"Timestamp":"2024-03-01T14:00:02Z","DeviceId":"d1","RemoteUrl":"2001:db8::3"}` + "\n" +
				`{"Timestamp":"2024-03-01T14:00:03Z","DeviceId":"d1","RemoteUrl":"http://1.2.3.4.example.com/"}` + "\n",
			want: got{
				Events: []string{"1.2.3.4.example.com d1 2024-03-01T14:00:03Z"},
				Skips:  []string{"1:ip_address", "2:ip_address", "3:ip_address"},
			},
		},
		{
			name:   "sysmon query",
			format: FormatSysmon,
			input:  `{"EventID":22,"Computer":"WS1","UtcTime":"2024-03-01 14:00:00.000","QueryName":"10.1.2.3"}` + "\n",
			want:   got{Skips: []string{"1:ip_address"}},
		},
		{
			name:   "generic csv",
			format: FormatCSV,
			input: "domain,machine,time\n" +
				"fe80::1%eth0,m1,2024-03-01T14:00:00Z\n" +
				"4.3.2.1.in-addr.arpa,m1,2024-03-01T14:00:01Z\n",
			want: got{
				Events: []string{"4.3.2.1.in-addr.arpa m1 2024-03-01T14:00:01Z"},
				Skips:  []string{"2:ip_address"},
			},
		},
	}
	checkProducerCases(t, tests)
}
