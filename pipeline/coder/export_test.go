package coder

// DictionaryCodes lists every code the built-in coder's tables can emit, with where it comes from,
// for the external test that checks them against the imported code sets.
func DictionaryCodes() map[string]string {
	out := map[string]string{}
	add := func(code, from string) {
		if code != "" {
			out[code] = from
		}
	}
	for _, c := range dictionary {
		if c.typ == cBlock {
			continue
		}
		codes := []string{c.code, c.side.r, c.side.l, c.side.b, c.female, c.male, c.exac}
		for _, code := range codes {
			if code == "" {
				continue
			}
			if c.seventh {
				add(padSeventh(code)+"A", c.id)
				add(padSeventh(code)+"D", c.id)
				continue
			}
			add(code, c.id)
		}
		add(c.hist, c.id+" (history)")
		add(c.fam, c.id+" (family)")
	}
	for _, p := range procedures {
		add(p.code, "procedure "+p.id)
	}
	return out
}
