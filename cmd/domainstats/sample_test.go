package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/dns.log from writeZeekDNSLog")

// sampleLogPath is the synthetic Zeek dns.log that the README's quick start
// reads. It uses only names and addresses reserved for documentation
// (RFC 2606 and RFC 5737).
const sampleLogPath = "testdata/dns.log"

var sampleDomains = []string{
	"www.example.com", "example.com", "mail.example.com", "cdn.example.net",
	"api.example.net", "example.org", "updates.example.org", "login.example.com",
	"static.example.net", "files.example.org", "shop.example.com", "vpn.example.net",
}

// writeZeekDNSLog writes lines records of a Zeek TSV dns.log from a fixed
// seed, starting at start and one to three seconds apart. Domains follow a
// skewed distribution, so some are seen by many machines and some by one.
func writeZeekDNSLog(w io.Writer, lines int, domains, machines []string, start time.Time, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	var b bytes.Buffer
	b.WriteString("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n")
	fmt.Fprintf(&b, "#open\t%s\n", start.Format("2006-01-02-15-04-05"))
	b.WriteString("#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\tquery\tqtype_name\trcode_name\n")
	b.WriteString("#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tstring\tstring\tstring\n")

	at := start
	for i := range lines {
		at = at.Add(time.Duration(1+rng.IntN(3)) * time.Second)

		// Squaring a uniform draw favours the first domains.
		u := rng.Float64()
		domain := domains[int(u*u*float64(len(domains)))]
		machine := machines[rng.IntN(len(machines))]

		fmt.Fprintf(&b, "%d.%06d\tC%015d\t%s\t%d\t192.0.2.53\t53\tudp\t%d\t%s\tA\tNOERROR\n",
			at.Unix(), rng.IntN(1_000_000), i, machine, 49152+rng.IntN(16000), rng.IntN(65536), domain)
		if b.Len() > 1<<20 {
			if _, err := w.Write(b.Bytes()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	fmt.Fprintf(&b, "#close\t%s\n", at.Format("2006-01-02-15-04-05"))
	_, err := w.Write(b.Bytes())
	return err
}

func sampleMachines() []string {
	var machines []string
	for i := 10; i < 30; i++ {
		machines = append(machines, fmt.Sprintf("192.0.2.%d", i))
	}
	for i := 100; i < 110; i++ {
		machines = append(machines, fmt.Sprintf("198.51.100.%d", i))
	}
	return machines
}

func writeSampleLog(w io.Writer) error {
	start := time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC)
	return writeZeekDNSLog(w, 400, sampleDomains, sampleMachines(), start, 1)
}

// TestSampleLogCurrent checks that the shipped sample equals what the
// generator writes. Run "go test -run TestSampleLogCurrent -update" to
// rewrite it after changing the generator.
func TestSampleLogCurrent(t *testing.T) {
	var want bytes.Buffer
	if err := writeSampleLog(&want); err != nil {
		t.Fatal(err)
	}

	if *update {
		if err := os.WriteFile(sampleLogPath, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	got, err := os.ReadFile(filepath.FromSlash(sampleLogPath))
	if err != nil {
		t.Fatalf("read sample log: %v (run go test -run TestSampleLogCurrent -update)", err)
	}
	if !bytes.Equal(want.Bytes(), got) {
		t.Errorf("%s differs from the generator's output; run go test -run TestSampleLogCurrent -update", sampleLogPath)
	}
}
