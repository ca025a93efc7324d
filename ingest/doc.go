// Package ingest reads DNS, TLS and HTTP telemetry logs as a stream of
// events: a domain, the machine that contacted it, and the time.
//
// A [Reader] reads one input line by line. It understands these formats:
//
//   - Zeek TSV logs (dns.log, ssl.log, http.log) with their # header lines.
//   - Zeek JSON logs, including Corelight's json-streaming-logs.
//   - Sysmon Event ID 22 (DnsQuery) as JSON lines, in the flat shapes that
//     NXLog and Winlogbeat write, in Winlogbeat's ECS shape, and in Elastic's
//     ECS fields alone (event.code, dns.question.name, host.name).
//   - Microsoft Defender for Endpoint DeviceNetworkEvents, exported as JSON
//     lines or CSV, and the streaming API's {"records":[…]} objects.
//   - CSV with a header that names domain, machine and time columns.
//
// [FormatAuto] detects the format from the first line of content, and a
// gzip-compressed input is decompressed transparently. Time fields accept
// the forms that [TimeFormats] lists.
//
// A line that cannot be used never stops the reader: [Reader.Next] returns
// a [*SkipError] that names the file, the line and a [Reason], and the next
// call continues with the next line.
//
// The reader changes domains only as far as the format requires: it decodes
// Zeek's \xNN and \\ escapes and reduces a URL or a Host header to its host
// name. Lowercasing and validation are left to the store.
//
// # Resuming
//
// Every event carries the byte offset just past its line, and
// [Reader.Position] returns a point from which a later [NewReader] call
// can continue. On a plain file the reader seeks there; on a gzip input it
// reads from the start and drops what lies before the position.
//
// # Caveats
//
// JSON inputs must hold one JSON value per line. A pretty-printed JSON
// document that spans several lines is reported as malformed lines, and
// a quoted CSV field that contains a line break is reported the same way.
package ingest
