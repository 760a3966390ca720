package search

import (
	"regexp"
	"strconv"
	"time"
)

// dateRE matches a FHIR date, dateTime or instant of any precision: year, month, day, minutes,
// seconds, fraction, with an optional zone (required by FHIR once a time is given; without one we
// take UTC, the server's zone).
var dateRE = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)

// ParseDateRange returns the half-open interval [lo, hi) that a date value of its precision covers:
// "2026-03" is all of March, "2026-03-05T10:00Z" is that minute.
func ParseDateRange(s string) (lo, hi time.Time, ok bool) {
	m := dateRE.FindStringSubmatch(s)
	if m == nil {
		return lo, hi, false
	}
	atoi := func(s string, def int) int {
		if s == "" {
			return def
		}
		n, _ := strconv.Atoi(s)
		return n
	}
	year, month, day := atoi(m[1], 1), atoi(m[2], 1), atoi(m[3], 1)
	hour, minute, sec := atoi(m[4], 0), atoi(m[5], 0), atoi(m[6], 0)
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, time.Month(month)) || hour > 23 || minute > 59 || sec > 60 {
		return lo, hi, false
	}
	loc := time.UTC
	if z := m[8]; z != "" && z != "Z" {
		h, _ := strconv.Atoi(z[1:3])
		mi, _ := strconv.Atoi(z[4:6])
		if h > 14 || mi > 59 {
			return lo, hi, false
		}
		off := h*3600 + mi*60
		if z[0] == '-' {
			off = -off
		}
		loc = time.FixedZone(z, off)
	}
	nsec := 0
	frac := m[7]
	if frac != "" {
		digits := frac[1:]
		if len(digits) > 9 {
			digits = digits[:9]
		}
		n, _ := strconv.Atoi(digits)
		for i := len(digits); i < 9; i++ {
			n *= 10
		}
		nsec = n
	}
	lo = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	switch {
	case m[2] == "":
		hi = lo.AddDate(1, 0, 0)
	case m[3] == "":
		hi = lo.AddDate(0, 1, 0)
	case m[4] == "":
		hi = lo.AddDate(0, 0, 1)
	case m[6] == "":
		hi = lo.Add(time.Minute)
	case frac == "":
		hi = lo.Add(time.Second)
	default:
		// A fraction of n digits covers 10^-n seconds.
		step := time.Second
		for i := 1; i < len(frac) && step > time.Nanosecond; i++ {
			step /= 10
		}
		hi = lo.Add(step)
	}
	return lo.UTC(), hi.UTC(), true
}

func daysIn(year int, m time.Month) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
