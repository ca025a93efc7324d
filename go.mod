module github.com/domainstats/domainstats

go 1.26.0

require (
	github.com/axiomhq/hyperloglog v0.3.0
	github.com/google/go-cmp v0.7.0
	go.etcd.io/bbolt v1.4.3
	golang.org/x/net v0.63.0
	golang.org/x/term v0.48.0
	golang.org/x/text v0.44.0
	golang.org/x/time v0.16.0
)

require (
	github.com/dgryski/go-metro v0.0.0-20250106013310-edb8663e5e33 // indirect
	github.com/kamstrup/intmap v0.5.2 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
