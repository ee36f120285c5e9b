/* sanitize.c — safe file names and HTML escaping for untrusted text
 * (image file names and vocabulary words may contain anything). */
#include <string.h>
#include <utf8proc.h>

#include "render/render.h"

static int keep(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
}

static int trim_char(char c) { return c == '_' || c == '.' || c == '-'; }

size_t imcap_sanitize_name(const char *in, const char *fallback, char *out, size_t cap) {
    if (cap == 0) return 0;
    size_t lim = cap - 1 < IMCAP_NAME_MAX ? cap - 1 : IMCAP_NAME_MAX;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && n < lim; p++) {
        char c = keep(*p) ? (char)*p : '_';
        if (c == '_' && n > 0 && out[n - 1] == '_') continue;
        if (n == 0 && trim_char(c)) continue;
        out[n++] = c;
    }
    while (n > 0 && trim_char(out[n - 1])) n--;
    out[n] = 0;
    if (n == 0 && fallback) {
        /* The fallback is ours, but sanitise it too so the rule holds. */
        for (const char *p = fallback; *p && n < lim; p++) out[n++] = keep((unsigned char)*p) ? *p : '_';
        out[n] = 0;
    }
    return n;
}

size_t imcap_render_stem(const char *path, char *out, size_t cap) {
    const char *base = path ? path : "";
    /* The last non-empty component: "dir/" names dir. */
    size_t len = strlen(base);
    while (len > 1 && base[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && base[start - 1] != '/') start--;
    size_t end = len;
    /* Drop the last extension, but not a leading dot (".profile" stays). */
    for (size_t i = len; i > start + 1; i--)
        if (base[i - 1] == '.') {
            end = i - 1;
            break;
        }
    char tmp[1024];
    size_t n = end - start < sizeof tmp - 1 ? end - start : sizeof tmp - 1;
    memcpy(tmp, base + start, n);
    tmp[n] = 0;
    return imcap_sanitize_name(tmp, "image", out, cap);
}

void imcap_buf_html(imcap_buf *b, const char *s) {
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t left = strlen((const char *)p);
    while (left > 0) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t run = 0;
        while (run < left && p[run] >= 0x20 && p[run] < 0x80 && !strchr("&<>\"'", p[run])) run++;
        if (run) {
            imcap_buf_append(b, (const char *)p, run);
            p += run;
            left -= run;
            continue;
        }
        unsigned char c = *p;
        const char *ent = NULL;
        switch (c) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: break;
        }
        if (ent) {
            imcap_buf_append(b, ent, strlen(ent));
            p++, left--;
        } else if (c < 0x20) {
            if (c == '\t' || c == '\n' || c == '\r')
                imcap_buf_append(b, (const char *)p, 1);
            else
                imcap_buf_append(b, replacement, 3);
            p++, left--;
        } else {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)left, &cp);
            if (k <= 0) {
                imcap_buf_append(b, replacement, 3);
                p++, left--;
            } else {
                imcap_buf_append(b, (const char *)p, (size_t)k);
                p += k, left -= (size_t)k;
            }
        }
    }
}
