/* Extended-precision helpers for HINCRBYFLOAT.
 *
 * Redis parses, adds and prints HINCRBYFLOAT operands as C `long double`
 * (x87 80-bit extended precision on x86-64) with strtold and "%.17Lf".
 * Rust has no such type, so this file does exactly those three steps with
 * the C library, which makes hashkv's digits identical to Redis's on the
 * same platform. Values cross the FFI boundary as 16 raw bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

#define HK_LD_BYTES 16
#define HK_MAX_LD_CHARS (5 * 1024)

/* Mirrors Redis util.c string2ld: returns 1 and stores the value on success,
 * 0 when `s` is not a float Redis would accept. */
int hk_ld_parse(const unsigned char *s, size_t slen, unsigned char *out) {
    char buf[HK_MAX_LD_CHARS];
    char *eptr;
    long double value;
    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';
    errno = 0;
    value = strtold(buf, &eptr);
    if (isspace((unsigned char)buf[0]) || (size_t)(eptr - buf) != slen ||
        ((errno == ERANGE) &&
         (value == HUGE_VALL || value == -HUGE_VALL || fpclassify(value) == FP_ZERO)) ||
        isnan(value))
        return 0;
    memset(out, 0, HK_LD_BYTES);
    memcpy(out, &value, sizeof(value) < HK_LD_BYTES ? sizeof(value) : HK_LD_BYTES);
    return 1;
}

/* Converts an i64 exactly as Redis does for an integer-encoded stored value. */
void hk_ld_from_i64(long long v, unsigned char *out) {
    long double value = (long double)v;
    memset(out, 0, HK_LD_BYTES);
    memcpy(out, &value, sizeof(value) < HK_LD_BYTES ? sizeof(value) : HK_LD_BYTES);
}

static long double load(const unsigned char *p) {
    long double v;
    memcpy(&v, p, sizeof(v) < HK_LD_BYTES ? sizeof(v) : HK_LD_BYTES);
    return v;
}

/* 1 when the value is +-inf or NaN. */
int hk_ld_is_nan_or_inf(const unsigned char *a) {
    long double v = load(a);
    return isnan(v) || isinf(v);
}

/* Adds b to a in place; returns 1 when the result is NaN or infinite. */
int hk_ld_add(unsigned char *a, const unsigned char *b) {
    long double v = load(a) + load(b);
    memcpy(a, &v, sizeof(v) < HK_LD_BYTES ? sizeof(v) : HK_LD_BYTES);
    return isnan(v) || isinf(v);
}

/* Mirrors Redis ld2string in LD_STR_HUMAN mode with a 5 KiB buffer: "%.17Lf",
 * trailing zeros and a trailing point stripped, "-0" turned into "0".
 * Returns the length written to out (capacity HK_MAX_LD_CHARS), or 0 when the
 * text does not fit, which is also what Redis stores then. */
size_t hk_ld_format(const unsigned char *a, char *out, size_t cap) {
    long double value = load(a);
    int l;
    if (cap < HK_MAX_LD_CHARS) return 0;
    if (isinf(value)) {
        if (value > 0) { memcpy(out, "inf", 3); return 3; }
        memcpy(out, "-inf", 4); return 4;
    }
    l = snprintf(out, HK_MAX_LD_CHARS, "%.17Lf", value);
    if (l < 0 || (size_t)l + 1 > HK_MAX_LD_CHARS) return 0;
    if (memchr(out, '.', (size_t)l) != NULL) {
        char *p = out + l - 1;
        while (*p == '0') { p--; l--; }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') { out[0] = '0'; l = 1; }
    return (size_t)l;
}
