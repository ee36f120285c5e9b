/* batch_walk.c — input discovery, order, shards and record formats for
 * `imcap batch` and `imcap merge` (see batch_walk.h for the rules). */
#include "batch/batch_walk.h"

#include <ctype.h>
#include <math.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imcap.h"
#include "render/gallery.h"
#include "render/render.h"

#define LIT(b, s) imcap_buf_append((b), s, sizeof s - 1)

int bw_fileid_of(const char *path, bw_fileid *id) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return 0;
}

static int id_in(const bw_fileid *v, size_t n, dev_t dev, ino_t ino) {
    for (size_t i = 0; i < n; i++)
        if (v[i].dev == dev && v[i].ino == ino) return 1;
    return 0;
}

/* ------------------------------------------------------------ visited set */

/* Open addressing over (dev, ino); a corpus may hold many thousands of
 * folders, so a linear list would make the walk quadratic. */
typedef struct {
    bw_fileid *v;
    unsigned char *used;
    size_t n, cap;
} idset;

static uint64_t id_hash(dev_t d, ino_t i) {
    uint64_t h = (uint64_t)d * 0x9e3779b97f4a7c15ULL ^ (uint64_t)i;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

/* 1 added, 0 already there, -1 out of memory. */
static int idset_add(idset *s, dev_t dev, ino_t ino) {
    if (2 * (s->n + 1) > s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 64;
        bw_fileid *nv = calloc(nc, sizeof *nv);
        unsigned char *nu = calloc(nc, 1);
        if (!nv || !nu) {
            free(nv), free(nu);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->used[i]) continue;
            size_t j = id_hash(s->v[i].dev, s->v[i].ino) & (nc - 1);
            while (nu[j]) j = (j + 1) & (nc - 1);
            nu[j] = 1, nv[j] = s->v[i];
        }
        free(s->v), free(s->used);
        s->v = nv, s->used = nu, s->cap = nc;
    }
    size_t j = id_hash(dev, ino) & (s->cap - 1);
    while (s->used[j]) {
        if (s->v[j].dev == dev && s->v[j].ino == ino) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->used[j] = 1;
    s->v[j].dev = dev, s->v[j].ino = ino;
    s->n++;
    return 1;
}

static void idset_free(idset *s) {
    free(s->v);
    free(s->used);
}

/* ------------------------------------------------------------ the walk */

static int list_add(bw_list *l, const char *path, const char *error) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 256;
        bw_item *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv, l->cap = nc;
    }
    bw_item *it = &l->v[l->n];
    it->path = strdup(path);
    it->error = error ? strdup(error) : NULL;
    if (!it->path || (error && !it->error)) {
        free(it->path), free(it->error);
        return -1;
    }
    l->n++;
    return 0;
}

static int add_error(bw_list *l, const char *path, const char *what, int e) {
    imcap_buf b = {0};
    imcap_buf_printf(&b, "%s: %s: %s", path, what, strerror(e));
    int rc = b.s ? list_add(l, path, b.s) : -1;
    imcap_buf_free(&b);
    return rc;
}

static int has_image_ext(const char *name) {
    static const char *ext[] = {"jpg", "jpeg", "jpe", "png", "gif", "bmp", "tga", "psd", "pnm", "ppm", "pgm", "pbm"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot + 1, ext[i])) return 1;
    return 0;
}

/* 1 when the file's first bytes are an image format, 0 otherwise (also
 * when it cannot be read). */
static int sniff_file(const char *path) {
    int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return 0;
    unsigned char head[64];
    ssize_t n, got = 0;
    while (got < (ssize_t)sizeof head && (n = read(fd, head + got, sizeof head - (size_t)got)) > 0) got += n;
    close(fd);
    return got > 0 && imcap_image_sniff(head, (size_t)got);
}


static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    bw_walk *w;
    bw_list *out;
    idset visited;
} walker;

static void note_forbidden(walker *k, const char *path, const struct stat *st) {
    if (!k->w->forbidden && id_in(k->w->forbid, k->w->n_forbid, st->st_dev, st->st_ino))
        k->w->forbidden = strdup(path);
}

static int walk_dir(walker *k, const char *dir) {
    k->w->n_dirs++;
    DIR *d = opendir(dir);
    if (!d) return add_error(k->out, dir, "cannot open folder", errno);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) { rc = -1; break; }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) { rc = -1; break; }
        n++;
        errno = 0;
    }
    int read_errno = errno;
    closedir(d);
    if (rc == 0 && read_errno) rc = add_error(k->out, dir, "cannot read folder", read_errno);
    /* Sorted entries make the walk itself deterministic: which of two links
     * to one folder is followed depends on the order they are met in. */
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *child = imcap_path_join(dir, names[i], NULL);
        if (!child) { rc = -1; break; }
        int hidden = names[i][0] == '.';
        struct stat st;
        if (stat(child, &st) != 0) {
            /* A dangling link or a file gone meanwhile: reported when its
             * name says it is an image, otherwise not ours. */
            if (!hidden && has_image_ext(names[i])) rc = list_add(k->out, child, NULL);
            else k->w->n_skipped_files++;
        } else if (S_ISDIR(st.st_mode)) {
            if (!k->w->recursive) k->w->n_skipped_subdirs++;
            else if (id_in(k->w->skip_dirs, k->w->n_skip_dirs, st.st_dev, st.st_ino)) k->w->n_output_dirs++;
            else {
                int added = idset_add(&k->visited, st.st_dev, st.st_ino);
                if (added < 0) rc = -1;
                else if (added == 0) k->w->n_repeated_dirs++;
                else rc = walk_dir(k, child);
            }
        } else if (S_ISREG(st.st_mode)) {
            if (sniff_file(child) || (!hidden && has_image_ext(names[i]))) {
                note_forbidden(k, child, &st);
                rc = list_add(k->out, child, NULL);
            } else {
                k->w->n_skipped_files++;
            }
        } else {
            k->w->n_skipped_files++;
        }
        free(child);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int bw_collect(char *const *args, int nargs, bw_walk *w, bw_list *out) {
    walker k = {w, out, {0}};
    int rc = 0;
    for (int a = 0; a < nargs && rc == 0; a++) {
        const char *p = args[a];
        struct stat st;
        if (stat(p, &st) != 0) {
            rc = add_error(out, p, "cannot access", errno);
        } else if (S_ISDIR(st.st_mode)) {
            int added = idset_add(&k.visited, st.st_dev, st.st_ino);
            if (added < 0) rc = -1;
            else if (added == 0) w->n_repeated_dirs++;
            else rc = walk_dir(&k, p);
        } else if (!S_ISREG(st.st_mode)) {
            /* Opening a FIFO or a device could block or read forever. */
            imcap_buf b = {0};
            imcap_buf_printf(&b, "%s: not a regular file or a folder", p);
            rc = list_add(out, p, b.s);
            imcap_buf_free(&b);
        } else {
            /* Named explicitly: always an input, a failed record if it is
             * not an image. */
            note_forbidden(&k, p, &st);
            rc = list_add(out, p, NULL);
        }
    }
    idset_free(&k.visited);
    return rc;
}

void bw_walk_free(bw_walk *w) {
    free(w->forbidden);
    w->forbidden = NULL;
}

static int cmp_item(const void *a, const void *b) {
    return strcmp(((const bw_item *)a)->path, ((const bw_item *)b)->path);
}

void bw_sort_unique(bw_list *l) {
    if (l->n < 2) return;
    /* Equal paths (a file both named and found in a named folder, a folder
     * named twice) are one input: one record. */
    qsort(l->v, l->n, sizeof *l->v, cmp_item);
    size_t j = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (!strcmp(l->v[i].path, l->v[j - 1].path)) {
            free(l->v[i].path);
            free(l->v[i].error);
        } else {
            l->v[j++] = l->v[i];
        }
    }
    l->n = j;
}

void bw_list_free(bw_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].path), free(l->v[i].error);
    free(l->v);
    memset(l, 0, sizeof *l);
}

size_t bw_find(const bw_list *l, const char *path) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid].path, path);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return (size_t)-1;
}

uint64_t bw_hash(const char *s) { return imcap_fnv1a64(IMCAP_FNV_OFFSET, s, strlen(s)); }

int bw_parse_shard(const char *s, int *index, int *count) {
    if (!s) return -1;
    char *end;
    errno = 0;
    long i = strtol(s, &end, 10);
    if (errno || end == s || *end != '/' || !isdigit((unsigned char)end[1])) return -1;
    const char *q = end + 1;
    long n = strtol(q, &end, 10);
    if (errno || end == q || *end || n < 1 || n > 1000000 || i < 1 || i > n) return -1;
    *index = (int)i;
    *count = (int)n;
    return 0;
}

void bw_shard(bw_list *l, int index, int count) {
    size_t j = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (bw_hash(l->v[i].path) % (uint64_t)count == (uint64_t)(index - 1)) {
            l->v[j++] = l->v[i];
        } else {
            free(l->v[i].path);
            free(l->v[i].error);
        }
    }
    l->n = j;
}

void bw_stem(const char *path, char out[BW_STEM_MAX]) {
    char base[IMCAP_NAME_MAX + 1];
    imcap_render_stem(path, base, sizeof base);
    snprintf(out, BW_STEM_MAX, "%s-%012llx", base, (unsigned long long)(bw_hash(path) & 0xFFFFFFFFFFFFULL));
}


/* ------------------------------------------------------------ formats */

int bw_format_parse(const char *s, bw_format *f) {
    if (!s) return -1;
    if (!strcmp(s, "jsonl")) *f = BW_JSONL;
    else if (!strcmp(s, "csv")) *f = BW_CSV;
    else if (!strcmp(s, "tsv")) *f = BW_TSV;
    else return -1;
    return 0;
}

const char *bw_format_name(bw_format f) { return f == BW_CSV ? "csv" : f == BW_TSV ? "tsv" : "jsonl"; }

/* The csv/tsv columns: path, caption, score, [domain_score, in_domain],
 * width, height, [ms], error. Files written before the in-domain check have
 * no domain columns; they are still read, resumed and merged as they are. */
static void header_text(char *buf, size_t cap, bw_format f, int timing, int domain) {
    const char *sep = f == BW_CSV ? "," : "\t";
    snprintf(buf, cap, "path%scaption%sscore%s%s%s%swidth%sheight%s%s%serror\n", sep, sep, sep,
             domain ? "domain_score" : "", domain ? sep : "", domain ? (f == BW_CSV ? "in_domain," : "in_domain\t") : "",
             sep, sep, timing ? "ms" : "", timing ? sep : "");
}

void bw_write_header(imcap_buf *b, bw_format f, int timing, int domain) {
    if (f != BW_CSV && f != BW_TSV) return;
    char h[128];
    header_text(h, sizeof h, f, timing, domain);
    imcap_buf_append(b, h, strlen(h));
}

static void csv_field(imcap_buf *b, const char *s) {
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        imcap_buf_append(b, s, strlen(s));
        return;
    }
    LIT(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"') LIT(b, "\"\"");
        else imcap_buf_append(b, p, 1);
    }
    LIT(b, "\"");
}

void bw_domain_fields(imcap_buf *b, double domain_score, int in_domain) {
    LIT(b, "\"domain_score\": ");
    imcap_buf_number(b, domain_score, 4);
    imcap_buf_printf(b, ", \"in_domain\": %s", in_domain ? "true" : "false");
}

void bw_write_record(imcap_buf *b, bw_format f, int timing, int domain, const bw_record *r) {
    if (f == BW_JSONL) {
        LIT(b, "{\"path\": ");
        imcap_buf_json_string(b, r->path);
        if (r->caption) {
            LIT(b, ", \"caption\": ");
            imcap_buf_json_string(b, r->caption);
        }
        if (r->has_score) {
            LIT(b, ", \"score\": ");
            imcap_buf_number(b, r->score, 9);
        }
        if (r->in_domain >= 0) {
            LIT(b, ", ");
            bw_domain_fields(b, r->domain_score, r->in_domain);
        }
        if (r->words) {
            LIT(b, ", \"words\": [");
            for (int t = 0; t < r->n_words; t++) {
                if (t) LIT(b, ", ");
                imcap_buf_json_string(b, r->words[t] ? r->words[t] : "");
            }
            LIT(b, "], \"logprobs\": [");
            for (int t = 0; t < r->n_words; t++) {
                if (t) LIT(b, ", ");
                imcap_buf_float(b, r->logprobs[t]);
            }
            LIT(b, "]");
        }
        if (r->width > 0) imcap_buf_printf(b, ", \"width\": %d, \"height\": %d", r->width, r->height);
        if (timing && r->has_ms) imcap_buf_printf(b, ", \"ms\": %.2f", r->ms);
        if (r->error) {
            LIT(b, ", \"error\": ");
            imcap_buf_json_string(b, r->error);
        }
        LIT(b, "}\n");
        return;
    }
    void (*field)(imcap_buf *, const char *) = f == BW_CSV ? csv_field : imcap_buf_tsv_field;
    const char *sep = f == BW_CSV ? "," : "\t";
    field(b, r->path);
    imcap_buf_append(b, sep, 1);
    field(b, r->caption);
    imcap_buf_append(b, sep, 1);
    if (r->has_score && isfinite(r->score)) imcap_buf_printf(b, "%.9g", r->score); /* non-finite: empty, as jsonl's null */
    imcap_buf_append(b, sep, 1);
    if (domain) {
        if (r->in_domain >= 0) {
            if (isfinite(r->domain_score)) imcap_buf_printf(b, "%.4g", r->domain_score);
            imcap_buf_printf(b, "%s%s", sep, r->in_domain ? "true" : "false");
        }
        else imcap_buf_append(b, sep, 1);
        imcap_buf_append(b, sep, 1);
    }
    if (r->width > 0) imcap_buf_printf(b, "%d%s%d", r->width, sep, r->height);
    else imcap_buf_append(b, sep, 1);
    imcap_buf_append(b, sep, 1);
    if (timing) {
        if (r->has_ms) imcap_buf_printf(b, "%.2f", r->ms);
        imcap_buf_append(b, sep, 1);
    }
    field(b, r->error);
    LIT(b, "\n");
}

/* ------------------------------------------------------------ parsing */

void bw_parsed_free(bw_parsed *p) {
    free(p->path), free(p->caption), free(p->score), free(p->error);
    memset(p, 0, sizeof *p);
}

typedef struct {
    const char *p, *end;
} jcur;

static void jws(jcur *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static void put_utf8(imcap_buf *b, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    imcap_buf_append(b, u, n);
}

static int hex4(const char *p, const char *end, unsigned *v) {
    if (end - p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* A JSON string at j->p into *out (malloc'd) when out is not NULL. Lone
 * surrogates U+DC80..U+DCFF become the byte they carry (see
 * bw_write_record); other lone surrogates become U+FFFD. */
static int jstring(jcur *j, char **out) {
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    imcap_buf b = {0};
    LIT(&b, ""); /* so b.s is never NULL for an empty string */
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) goto bad;
        if (c != '\\') {
            imcap_buf_append(&b, j->p++, 1);
            continue;
        }
        if (++j->p >= j->end) goto bad;
        char e = *j->p++;
        unsigned u, u2;
        switch (e) {
        case '"': LIT(&b, "\""); break;
        case '\\': LIT(&b, "\\"); break;
        case '/': LIT(&b, "/"); break;
        case 'b': LIT(&b, "\b"); break;
        case 'f': LIT(&b, "\f"); break;
        case 'n': LIT(&b, "\n"); break;
        case 'r': LIT(&b, "\r"); break;
        case 't': LIT(&b, "\t"); break;
        case 'u':
            if (hex4(j->p, j->end, &u)) goto bad;
            j->p += 4;
            if (u >= 0xD800 && u <= 0xDBFF && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' &&
                !hex4(j->p + 2, j->end, &u2) && u2 >= 0xDC00 && u2 <= 0xDFFF) {
                j->p += 6;
                put_utf8(&b, 0x10000 + ((u - 0xD800) << 10) + (u2 - 0xDC00));
            } else if (u >= 0xDC80 && u <= 0xDCFF) {
                char raw = (char)(u - 0xDC00);
                imcap_buf_append(&b, &raw, 1);
            } else if (u >= 0xD800 && u <= 0xDFFF) {
                put_utf8(&b, 0xFFFD);
            } else if (u == 0) {
                goto bad; /* C strings cannot hold it, and we never write it */
            } else {
                put_utf8(&b, u);
            }
            break;
        default: goto bad;
        }
    }
    if (j->p >= j->end) goto bad;
    j->p++;
    if (out) *out = b.s;
    else imcap_buf_free(&b);
    return 0;
bad:
    imcap_buf_free(&b);
    return -1;
}

static int jvalue(jcur *j, int depth);

/* digits at j->p: how many (0: none) */
static int jdigits(jcur *j) {
    int n = 0;
    while (j->p < j->end && isdigit((unsigned char)*j->p)) j->p++, n++;
    return n;
}

/* RFC 8259's number and nothing else: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jnumber(jcur *j, const char **start, size_t *len) {
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || !isdigit((unsigned char)*j->p)) return -1;
    if (*j->p == '0') j->p++;
    else jdigits(j);
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!jdigits(j)) return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!jdigits(j)) return -1;
    }
    if (start) *start = s, *len = (size_t)(j->p - s);
    return 0;
}

static int jliteral(jcur *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n)) return -1;
    j->p += n;
    return 0;
}

static int jvalue(jcur *j, int depth) {
    if (depth > 16) return -1;
    jws(j);
    if (j->p >= j->end) return -1;
    switch (*j->p) {
    case '"': return jstring(j, NULL);
    case 'n': return jliteral(j, "null");
    case 't': return jliteral(j, "true");
    case 'f': return jliteral(j, "false");
    case '[':
    case '{': {
        char close = *j->p == '[' ? ']' : '}';
        int obj = close == '}';
        j->p++;
        jws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        for (;;) {
            if (obj) {
                jws(j);
                if (jstring(j, NULL)) return -1;
                jws(j);
                if (j->p >= j->end || *j->p++ != ':') return -1;
            }
            if (jvalue(j, depth + 1)) return -1;
            jws(j);
            if (j->p >= j->end) return -1;
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ != close) return -1;
            return 0;
        }
    }
    default: return jnumber(j, NULL, NULL);
    }
}

/* A string or null into *out (NULL for null). */
static int jstring_or_null(jcur *j, char **out) {
    jws(j);
    if (j->p < j->end && *j->p == 'n') return jliteral(j, "null");
    return jstring(j, out);
}

static int parse_jsonl(const char *rec, size_t n, bw_parsed *p, const char **why) {
    jcur j = {rec, rec + n};
    *why = "not a JSON object";
    jws(&j);
    if (j.p >= j.end || *j.p++ != '{') return -1;
    jws(&j);
    if (j.p < j.end && *j.p == '}') j.p++;
    else
        for (;;) {
            char *key = NULL;
            jws(&j);
            if (jstring(&j, &key)) return -1;
            jws(&j);
            if (j.p >= j.end || *j.p++ != ':') {
                free(key);
                return -1;
            }
            int rc = 0;
            char **dst = !strcmp(key, "path") ? &p->path : !strcmp(key, "caption") ? &p->caption
                         : !strcmp(key, "error") ? &p->error : NULL;
            if (dst) {
                free(*dst), *dst = NULL;
                rc = jstring_or_null(&j, dst);
            } else if (!strcmp(key, "score")) {
                jws(&j);
                const char *s;
                size_t len;
                if (j.p < j.end && *j.p == 'n') rc = jliteral(&j, "null");
                else if (!(rc = jnumber(&j, &s, &len))) {
                    free(p->score);
                    p->score = strndup(s, len);
                }
            } else if (!strcmp(key, "width") || !strcmp(key, "height")) {
                jws(&j);
                const char *s;
                size_t len;
                if (!(rc = jnumber(&j, &s, &len))) *(key[0] == 'w' ? &p->width : &p->height) = atoi(s);
            } else {
                if (!strcmp(key, "ms")) p->has_ms = 1;
                rc = jvalue(&j, 1);
            }
            free(key);
            if (rc) return -1;
            jws(&j);
            if (j.p >= j.end) return -1;
            if (*j.p == ',') {
                j.p++;
                continue;
            }
            if (*j.p++ != '}') return -1;
            break;
        }
    jws(&j);
    if (j.p != j.end) return -1;
    *why = "no \"path\"";
    return p->path ? 0 : -1;
}

/* Splits a csv/tsv record (without its newline) into fields, unquoting or
 * unescaping each. Returns the field count, -1 for a malformed record or -2
 * when out of memory. */
static int split_fields(bw_format f, const char *rec, size_t n, char **fields, int max) {
    int k = 0;
    size_t i = 0;
    for (;;) {
        if (k == max) return -1;
        imcap_buf b = {0};
        LIT(&b, "");
        if (f == BW_CSV && i < n && rec[i] == '"') {
            i++;
            for (;;) {
                if (i >= n) {
                    imcap_buf_free(&b);
                    return -1;
                }
                if (rec[i] == '"') {
                    if (i + 1 < n && rec[i + 1] == '"') {
                        LIT(&b, "\"");
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                imcap_buf_append(&b, rec + i++, 1);
            }
            if (i < n && rec[i] != ',') {
                imcap_buf_free(&b);
                return -1;
            }
        } else {
            char sep = f == BW_CSV ? ',' : '\t';
            while (i < n && rec[i] != sep) {
                char c = rec[i++];
                /* what no writer of ours produces: a quote inside an unquoted
                 * csv field, a bare CR, a tsv escape other than \\ \t \n \r */
                int bad = (f == BW_CSV && c == '"') || c == '\r' || (f == BW_TSV && c == '\\' && i >= n);
                if (!bad && f == BW_TSV && c == '\\') {
                    char e = rec[i++];
                    c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == '\\' ? '\\' : 0;
                    bad = c == 0;
                }
                if (bad) {
                    imcap_buf_free(&b);
                    return -1;
                }
                imcap_buf_append(&b, &c, 1);
            }
        }
        if (b.oom || !b.s) {
            imcap_buf_free(&b);
            return -2;
        }
        fields[k++] = b.s;
        if (i >= n) return k;
        i++; /* the separator */
    }
}

int bw_parse_record(bw_format f, int timing, int domain, const char *rec, size_t n, bw_parsed *p, char *msg,
                    size_t msg_cap) {
    memset(p, 0, sizeof *p);
    if (n && rec[n - 1] == '\n') n--;
    if (f == BW_JSONL) {
        const char *why;
        if (parse_jsonl(rec, n, p, &why) == 0) return 0;
        snprintf(msg, msg_cap, "%s", why);
        bw_parsed_free(p);
        return -1;
    }
    char *v[10] = {0};
    int want = (timing ? 7 : 6) + (domain ? 2 : 0);
    int k = split_fields(f, rec, n, v, 10);
    if (k != want) {
        for (int i = 0; i < 10; i++) free(v[i]);
        if (k == -2) {
            snprintf(msg, msg_cap, "out of memory");
            return -2;
        }
        snprintf(msg, msg_cap, "%d fields instead of %d", k < 0 ? 0 : k, want);
        return -1;
    }
    if (domain) { /* the domain columns are not kept: drop them, so the rest reads as before */
        free(v[3]), free(v[4]);
        for (int i = 3; i + 2 < want; i++) v[i] = v[i + 2];
        v[want - 2] = v[want - 1] = NULL;
        want -= 2;
    }
    int has_score = *v[2] != 0;
    p->path = v[0];
    p->caption = has_score || *v[1] ? v[1] : NULL;
    p->score = has_score ? v[2] : NULL;
    p->width = atoi(v[3]);
    p->height = atoi(v[4]);
    p->has_ms = timing && *v[5];
    p->error = *v[want - 1] ? v[want - 1] : NULL;
    if (!p->caption) free(v[1]);
    if (!p->score) free(v[2]);
    free(v[3]), free(v[4]);
    if (timing) free(v[5]);
    if (!p->error) free(v[want - 1]);
    return 0;
}

int bw_reader_open(bw_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->name = strdup(path);
    r->f = fopen(path, "rb");
    if (!r->f || !r->name) {
        snprintf(r->msg, sizeof r->msg, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int c = getc(r->f);
    if (c == EOF) return 0; /* empty: nothing in it yet */
    if (c == '{') {
        ungetc(c, r->f);
        r->known = 1, r->fmt = BW_JSONL, r->timing = 1;
        r->line = 1;
        return 0;
    }
    ungetc(c, r->f);
    ssize_t n = getline(&r->line_buf, &r->line_cap, r->f);
    if (n <= 0) {
        snprintf(r->msg, sizeof r->msg, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        char head[128];
        bw_format hf = i < 4 ? BW_CSV : BW_TSV;
        int ht = !(i & 1), hd = !(i & 2);
        header_text(head, sizeof head, hf, ht, hd);
        size_t hl = strlen(head);
        if ((size_t)n == hl && !memcmp(r->line_buf, head, hl)) {
            r->known = 1, r->fmt = hf, r->timing = ht, r->domain = hd;
            r->end = n;
            r->line = 2;
            return 0;
        }
        /* a header cut short by an interruption: nothing recorded yet */
        if (r->line_buf[n - 1] != '\n' && (size_t)n < hl && !memcmp(r->line_buf, head, (size_t)n)) return 0;
    }
    snprintf(r->msg, sizeof r->msg,
             "%s: not an imcap batch output: the first line is neither a JSON record nor a csv/tsv header", path);
    return -1;
}

int bw_reader_next(bw_reader *r, bw_parsed *p) {
    if (p) memset(p, 0, sizeof *p);
    if (!r->known) return 0;
    r->rec.len = 0;
    r->off = r->end;
    long long first = r->line;
    int quotes = 0;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->line_buf, &r->line_cap, r->f);
        if (n <= 0) {
            if (ferror(r->f)) {
                snprintf(r->msg, sizeof r->msg, "%s: read error: %s", r->name, strerror(errno));
                return -1;
            }
            return r->rec.len ? 2 : 0;
        }
        imcap_buf_append(&r->rec, r->line_buf, (size_t)n);
        r->line++;
        if (r->line_buf[n - 1] != '\n') return 2;
        if (r->fmt != BW_CSV) break;
        /* A quoted CSV field may hold newlines: the record ends at a newline
         * with the quotes balanced. */
        for (ssize_t i = 0; i < n; i++) quotes ^= r->line_buf[i] == '"';
        if (!quotes) break;
    }
    r->end = r->off + (long long)r->rec.len;
    if (p) {
        char why[256];
        int pr = bw_parse_record(r->fmt, r->timing, r->domain, r->rec.s, r->rec.len, p, why, sizeof why);
        if (pr == -2) {
            snprintf(r->msg, sizeof r->msg, "%s:%lld: out of memory for the record", r->name, first);
            return -1;
        }
        if (pr) {
            snprintf(r->msg, sizeof r->msg, "%s:%lld: malformed %s record: %s", r->name, first, bw_format_name(r->fmt),
                     why);
            return -1;
        }
    }
    return 1;
}

void bw_reader_close(bw_reader *r) {
    if (r->f) fclose(r->f);
    free(r->name);
    free(r->line_buf);
    imcap_buf_free(&r->rec);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ gallery */

static int exists_in(const char *dir, const char *stem, const char *suffix) {
    char *path = imcap_path_join(dir, stem, suffix);
    int ok = path && access(path, R_OK) == 0;
    free(path);
    return ok;
}

imcap_status bw_gallery_add(struct imcap_gallery *g, const char *dir, const bw_parsed *p, imcap_error *err) {
    char stem[BW_STEM_MAX];
    bw_stem(p->path, stem);
    imcap_gallery_item it = {
        .path = p->path,
        .stem = stem,
        .caption = p->caption,
        .score = p->score,
        .width = p->width,
        .height = p->height,
        .error = p->error,
        .has_thumb = exists_in(dir, stem, IMCAP_GALLERY_THUMB_SUFFIX),
        .has_viewer = exists_in(dir, stem, ".html"),
    };
    return imcap_gallery_add(g, &it, err);
}
