/* fuzz_name: the file-name rules, name_check(), name_escape() and
 * name_state_key(), on any bytes a peer could offer as a name.
 *
 * Checked, beyond memory safety: name_escape() always terminates its output
 * inside the buffer and never lets a control byte through; a name
 * name_check() accepts has no '/' and no NUL; the state key is 32 lowercase
 * hex digits. Seeds: fixtures/fuzz/name/ (one file per line of
 * fixtures/names/accept.txt and reject.txt). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xfer/err.h"
#include "xfer/name.h"
#include "xfer/proto.h"

static void check_escape(const char *in, size_t len, size_t cap)
{
    char *out = malloc(cap); /* exactly cap: writing past it is caught */
    size_t n;

    if (out == NULL)
        abort();
    name_escape(in, len, out, cap);
    n = strnlen(out, cap);
    if (n == cap)
        abort(); /* not terminated */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c < 0x20 || c == 0x7f)
            abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *name = (const char *)data;
    const char *why = NULL;
    char key[NAME_KEY_LEN + 1];
    char *z;
    int rc;

    rc = name_check(name, size, &why);
    if (rc == 0) {
        if (size == 0 || size > PROTO_MAX_NAME || memchr(name, '/', size) != NULL ||
            memchr(name, '\0', size) != NULL)
            abort();
    } else if (rc != XFER_ENAME || why == NULL) {
        abort();
    }
    check_escape(name, size, 4 * size + 16);
    check_escape(name, size, 1 + size % 16);
    /* The receiver keys an accepted name, which holds no NUL. */
    z = malloc(size + 1);
    if (z == NULL)
        abort();
    memcpy(z, name, size);
    z[size] = '\0';
    name_state_key(z, key);
    if (strlen(key) != NAME_KEY_LEN || strspn(key, "0123456789abcdef") != NAME_KEY_LEN)
        abort();
    free(z);
    return 0;
}
