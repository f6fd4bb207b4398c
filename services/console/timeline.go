package console

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"
)

// timelineItems renders a timeline's events as the list items of
// timeline.html. A 1,000-event timeline through html/template's
// per-action escapers cost more than the API's whole answer, so the items
// are written here: every value from an event goes through escapeHTML —
// the same characters html/template escapes in text and in quoted
// attribute values — and the one URL through url.PathEscape first; no
// value is written anywhere else (no script, style, unquoted attribute or
// URL scheme). TestTimelineItemsAsTemplate holds it to the template's
// rendering.
func timelineItems(rows []row) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 512)
	for _, r := range rows {
		idx := strconv.FormatUint(r.Index, 10)
		b.WriteString(`<li class="ev ev-`)
		escapeHTML(&b, r.Type)
		b.WriteString(`" data-index="`)
		b.WriteString(idx)
		b.WriteString(`"><h2><span class="seq">#`)
		b.WriteString(strconv.FormatInt(r.Seq, 10))
		b.WriteString(`</span> `)
		escapeHTML(&b, r.Type)
		b.WriteString(` <span class="meta">`)
		b.WriteString(r.Time.UTC().Format("2006-01-02 15:04:05Z"))
		b.WriteString(` · `)
		escapeHTML(&b, r.Who)
		b.WriteString(` · `)
		escapeHTML(&b, r.Target)
		b.WriteString(` · ledger index `)
		b.WriteString(idx)
		b.WriteString("</span></h2>\n<p class=\"meta\"><a href=\"/console/proof/")
		escapeHTML(&b, url.PathEscape(r.Tenant))
		b.WriteString("/")
		b.WriteString(idx)
		b.WriteString(`" aria-label="Check the inclusion of event `)
		b.WriteString(idx)
		b.WriteString("\">check its inclusion</a></p>\n")
		if r.Statement != "" {
			b.WriteString("<pre><code>")
			escapeHTML(&b, r.Statement)
			b.WriteString("</code></pre>")
		}
		b.WriteString("\n")
		if len(r.Details) > 0 {
			b.WriteString("<dl>")
			for _, d := range r.Details {
				b.WriteString("<dt>")
				escapeHTML(&b, d.Name)
				b.WriteString("</dt><dd>")
				escapeHTML(&b, d.Value)
				b.WriteString("</dd>")
			}
			b.WriteString("</dl>")
		}
		b.WriteString("\n</li>")
	}
	return template.HTML(b.String())
}

// escapeHTML writes s escaped as html/template escapes text and quoted
// attribute values: & < > " ' + and NUL (as U+FFFD).
func escapeHTML(b *strings.Builder, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '&':
			rep = "&amp;"
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '"':
			rep = "&#34;"
		case '\'':
			rep = "&#39;"
		case '+':
			rep = "&#43;"
		case 0:
			rep = "\uFFFD"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		last = i + 1
	}
	b.WriteString(s[last:])
}
