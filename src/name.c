#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "xfer/err.h"
#include "xfer/name.h"
#include "xfer/proto.h"

/* Returns the length of the valid UTF-8 sequence at p (1..4) and its code
 * point, or 0 if the bytes are not valid UTF-8 (overlong, surrogate, past
 * U+10FFFF, or cut short). */
static size_t utf8_decode(const uint8_t *p, size_t len, uint32_t *cp)
{
    size_t n;
    uint32_t c;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        c = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        c = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        c = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
        c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

static int is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0);
}

/* Bidi embeddings, overrides and isolates can make a name display as
 * something else (CVE-2021-42574 style). */
static int is_bidi_control(uint32_t cp)
{
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e ||
           cp == 0x200f || cp == 0x061c;
}

int name_check(const char *name, size_t len, const char **why)
{
    const uint8_t *p = (const uint8_t *)name;
    size_t i = 0;

    *why = NULL;
    if (len == 0) {
        *why = "empty name";
        return XFER_ENAME;
    }
    if (len > PROTO_MAX_NAME) {
        *why = "name longer than 255 bytes";
        return XFER_ENAME;
    }
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        *why = "name is . or ..";
        return XFER_ENAME;
    }
    if (len == strlen(NAME_STATE_DIR) && memcmp(name, NAME_STATE_DIR, len) == 0) {
        *why = "name is reserved for xfer's partial files";
        return XFER_ENAME;
    }
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);

        if (n == 0) {
            *why = "name is not valid UTF-8";
            return XFER_ENAME;
        }
        if (cp == '/') {
            *why = "name contains '/'";
            return XFER_ENAME;
        }
        if (cp == 0 || is_control(cp)) {
            *why = "name contains a control character";
            return XFER_ENAME;
        }
        if (is_bidi_control(cp)) {
            *why = "name contains a bidirectional text control";
            return XFER_ENAME;
        }
        i += n;
    }
    return 0;
}

/* Writes the display form of the character at p into tmp (16 bytes);
 * returns its length and sets *used to the input bytes it consumed. */
static size_t escape_one(const uint8_t *p, size_t len, char *tmp, size_t *used)
{
    uint32_t cp = 0;
    size_t n = utf8_decode(p, len, &cp);

    *used = n;
    if (n == 0) {
        *used = 1;
        return (size_t)snprintf(tmp, 16, "\\x%02x", p[0]);
    }
    /* U+2028 and U+2029 end a line for many viewers: one name or peer text
     * must never pass for two log lines. Allowed in names, never shown raw. */
    if (is_control(cp) || is_bidi_control(cp) || cp == 0x2028 || cp == 0x2029) {
        if (cp < 0x100)
            return (size_t)snprintf(tmp, 16, "\\x%02x", (unsigned)cp);
        return (size_t)snprintf(tmp, 16, "\\u{%04x}", (unsigned)cp);
    }
    if (cp == '\\')
        return (size_t)snprintf(tmp, 16, "\\\\");
    memcpy(tmp, p, n);
    return n;
}

void name_escape(const char *in, size_t len, char *out, size_t cap)
{
    const uint8_t *p = (const uint8_t *)in;
    size_t total = 0;
    size_t i = 0;
    size_t o = 0;
    size_t reserve;

    if (cap == 0)
        return;
    while (i < len) {
        char tmp[16];
        size_t n;

        total += escape_one(p + i, len - i, tmp, &n);
        i += n;
    }
    /* Room for "..." is kept only when the whole name cannot fit. */
    reserve = total < cap ? 1 : 4;
    i = 0;
    while (i < len) {
        char tmp[16];
        size_t n;
        size_t tn = escape_one(p + i, len - i, tmp, &n);

        if (cap - o < tn + reserve) {
            if (cap - o >= 4) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, tn);
        o += tn;
        i += n;
    }
    out[o] = '\0';
}

void name_state_key(const char *name, char out[NAME_KEY_LEN + 1])
{
    XXH128_hash_t h = XXH3_128bits(name, strlen(name));

    snprintf(out, NAME_KEY_LEN + 1, "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
}
