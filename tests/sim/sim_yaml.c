/* A reader for the YAML subset used by Apple's device-management schema.
 *
 * Those files are machine-written and regular: block mappings and sequences,
 * two-space indentation, plain or single-quoted scalars that may continue on
 * deeper-indented lines, `|-` block scalars for long text, and a few
 * anchor/alias pairs (`&id001` ... `*id001`: a shared or recursive subkeys
 * list), and the empty flow collections `[]` and `{}`.
 * The reader works line by line: each line is (indent, text); a node is the
 * run of lines indented deeper than its parent. Anything outside that subset
 * (flow collections, tags, documents) is refused with the line number, so a
 * future schema change shows up as a clear error instead of a wrong tree. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

typedef enum { SY_SCALAR, SY_MAP, SY_SEQ } sy_kind_t;

struct sy_node {
    sy_kind_t kind;
    char *text;            /* scalar */
    char **keys;           /* map keys (NULL for sequences) */
    struct sy_node **vals; /* map values or sequence items */
    size_t n, cap;
    struct sy_node *next_alloc; /* every node of a document, for freeing (aliases share nodes) */
};

typedef struct {
    int indent;
    char *text; /* points into the document's copy of the input */
    int lineno;
} sy_line_t;

typedef struct {
    char *name;
    struct sy_node *node;
} sy_anchor_t;

struct sy_doc {
    char *buf;
    sy_line_t *lines;
    size_t nlines, pos;
    struct sy_node *all;
    struct sy_node *root;
    sy_anchor_t *anchors;
    size_t nanchors;
    char *err;
    size_t errlen;
    int failed;
};

static struct sy_node *node_new(sy_doc_t *d, sy_kind_t kind)
{
    struct sy_node *n = calloc(1, sizeof *n);
    if (!n) abort();
    n->kind = kind;
    n->next_alloc = d->all;
    d->all = n;
    return n;
}

static void node_push(struct sy_node *n, char *key, struct sy_node *val)
{
    if (n->n == n->cap) {
        n->cap = n->cap ? 2 * n->cap : 8;
        n->vals = realloc(n->vals, n->cap * sizeof *n->vals);
        if (n->kind == SY_MAP) n->keys = realloc(n->keys, n->cap * sizeof *n->keys);
        if (!n->vals || (n->kind == SY_MAP && !n->keys)) abort();
    }
    if (n->kind == SY_MAP) n->keys[n->n] = key;
    n->vals[n->n++] = val;
}

static char *xstrdup(const char *s)
{
    char *r = strdup(s);
    if (!r) abort();
    return r;
}

static void fail(sy_doc_t *d, int lineno, const char *what)
{
    if (!d->failed) sim_errf(d->err, d->errlen, "line %d: %s", lineno, what);
    d->failed = 1;
}

static sy_line_t *cur(sy_doc_t *d)
{
    return d->pos < d->nlines ? &d->lines[d->pos] : NULL;
}

static bool is_seq_item(const char *t)
{
    return t[0] == '-' && (t[1] == ' ' || t[1] == '\0');
}

/* Where a "key: value" splits: the first ": " (or a final ':') outside
 * quotes. Returns the colon's offset or -1 when the text is not an entry. */
static long entry_colon(const char *t)
{
    if (t[0] == '\'' || t[0] == '"') return -1; /* quoted keys do not occur; treat as a scalar */
    for (long i = 0; t[i]; i++) {
        if (t[i] == ':' && (t[i + 1] == ' ' || t[i + 1] == '\0')) return i;
        if (t[i] == ' ' && t[i + 1] == '#') return -1;
    }
    return -1;
}

/* Text of a scalar that may continue on the following lines indented deeper
 * than `parent_indent`. Quotes are removed ('' -> ' inside single quotes). */
static char *scalar_text(sy_doc_t *d, const char *first, int parent_indent)
{
    size_t cap = strlen(first) + 64, n = 0;
    char *acc = malloc(cap);
    if (!acc) abort();
    n = (size_t)snprintf(acc, cap, "%s", first);
    for (sy_line_t *l = cur(d); l && l->indent > parent_indent; l = cur(d)) {
        size_t need = n + strlen(l->text) + 2;
        if (need > cap) {
            cap = need * 2;
            acc = realloc(acc, cap);
            if (!acc) abort();
        }
        acc[n++] = ' ';
        strcpy(acc + n, l->text);
        n += strlen(l->text);
        d->pos++;
    }
    /* Strip a trailing comment from plain scalars. */
    if (acc[0] != '\'' && acc[0] != '"') {
        char *hash = strstr(acc, " #");
        if (hash) *hash = '\0';
        n = strlen(acc);
        while (n && acc[n - 1] == ' ')
            acc[--n] = '\0';
        return acc;
    }
    char q = acc[0];
    char *out = malloc(n + 1);
    if (!out) abort();
    size_t k = 0, i = 1;
    for (; i < n; i++) {
        if (acc[i] == q) {
            if (q == '\'' && acc[i + 1] == '\'') {
                out[k++] = '\'';
                i++;
                continue;
            }
            break;
        }
        if (q == '"' && acc[i] == '\\' && i + 1 < n) {
            i++;
            switch (acc[i]) {
            case 'n': out[k++] = '\n'; break;
            case 't': out[k++] = '\t'; break;
            default: out[k++] = acc[i]; break;
            }
            continue;
        }
        out[k++] = acc[i];
    }
    out[k] = '\0';
    if (i >= n) fail(d, d->pos ? d->lines[d->pos - 1].lineno : 0, "unterminated quoted scalar");
    free(acc);
    return out;
}

/* A block scalar (| |- > >-): every following line deeper than the parent. */
static char *block_text(sy_doc_t *d, int parent_indent, bool folded)
{
    size_t cap = 256, n = 0;
    char *acc = malloc(cap);
    if (!acc) abort();
    acc[0] = '\0';
    int base = -1;
    for (sy_line_t *l = cur(d); l && l->indent > parent_indent; l = cur(d)) {
        if (base < 0) base = l->indent;
        size_t extra = (size_t)(l->indent > base ? l->indent - base : 0);
        size_t need = n + extra + strlen(l->text) + 2;
        if (need > cap) {
            cap = need * 2;
            acc = realloc(acc, cap);
            if (!acc) abort();
        }
        if (n) acc[n++] = folded ? ' ' : '\n';
        memset(acc + n, ' ', extra);
        n += extra;
        strcpy(acc + n, l->text);
        n += strlen(l->text);
        d->pos++;
    }
    return acc;
}

static struct sy_node *parse_block(sy_doc_t *d, int indent);

static struct sy_node *scalar_node(sy_doc_t *d, char *text)
{
    struct sy_node *n = node_new(d, SY_SCALAR);
    n->text = text;
    return n;
}

/* The value after "key:" or "- " on a line at `indent` (v may be empty). */
static struct sy_node *parse_value(sy_doc_t *d, const char *v, int indent, int lineno)
{
    char anchor[64] = "";
    if (v[0] == '&') {
        size_t i = 1;
        while (v[i] && v[i] != ' ' && i < sizeof anchor)
            i++;
        if (i >= sizeof anchor) {
            fail(d, lineno, "anchor name too long");
            return NULL;
        }
        memcpy(anchor, v + 1, i - 1);
        anchor[i - 1] = '\0';
        v += i;
        while (*v == ' ')
            v++;
    }
    /* Register the anchor before parsing its value: an alias may point back
     * into the node being parsed (a recursive subkeys list). The placeholder
     * takes over the parsed node's contents afterwards. */
    struct sy_node *placeholder = NULL;
    if (anchor[0]) {
        placeholder = node_new(d, SY_SCALAR);
        d->anchors = realloc(d->anchors, (d->nanchors + 1) * sizeof *d->anchors);
        if (!d->anchors) abort();
        d->anchors[d->nanchors].name = xstrdup(anchor);
        d->anchors[d->nanchors].node = placeholder;
        d->nanchors++;
    }
    struct sy_node *node = NULL;
    if (strcmp(v, "[]") == 0) {
        node = node_new(d, SY_SEQ);
    } else if (strcmp(v, "{}") == 0) {
        node = node_new(d, SY_MAP);
    } else if (v[0] == '*') {
        for (size_t i = 0; i < d->nanchors; i++)
            if (strcmp(d->anchors[i].name, v + 1) == 0) node = d->anchors[i].node;
        if (!node) {
            fail(d, lineno, "alias to an unknown anchor");
            return NULL;
        }
    } else if (v[0] == '[' || v[0] == '{' || v[0] == '!' || strcmp(v, "---") == 0) {
        fail(d, lineno, "flow collections, tags and documents are not supported");
        return NULL;
    } else if (v[0] == '|' || v[0] == '>') {
        node = scalar_node(d, block_text(d, indent, v[0] == '>'));
    } else if (v[0] == '\0') {
        sy_line_t *l = cur(d);
        if (l && l->indent > indent)
            node = parse_block(d, l->indent);
        else if (l && l->indent == indent && is_seq_item(l->text))
            node = parse_block(d, indent); /* "key:\n- item" at the key's indent */
        else
            node = scalar_node(d, xstrdup(""));
    } else {
        node = scalar_node(d, scalar_text(d, v, indent));
    }
    if (placeholder && node) {
        placeholder->kind = node->kind;
        placeholder->text = node->text;
        placeholder->keys = node->keys;
        placeholder->vals = node->vals;
        placeholder->n = node->n;
        placeholder->cap = node->cap;
        node->text = NULL;
        node->keys = NULL;
        node->vals = NULL;
        node->n = node->cap = 0;
        node = placeholder;
    }
    return node;
}

static struct sy_node *parse_map(sy_doc_t *d, int indent)
{
    struct sy_node *map = node_new(d, SY_MAP);
    for (sy_line_t *l = cur(d); l && !d->failed; l = cur(d)) {
        if (l->indent < indent || (l->indent == indent && is_seq_item(l->text))) break;
        if (l->indent > indent) {
            fail(d, l->lineno, "unexpected indentation");
            break;
        }
        long c = entry_colon(l->text);
        if (c < 0) {
            fail(d, l->lineno, "expected 'key: value'");
            break;
        }
        char *key = l->text;
        key[c] = '\0';
        const char *v = l->text + c + 1;
        while (*v == ' ')
            v++;
        int lineno = l->lineno;
        d->pos++;
        struct sy_node *val = parse_value(d, v, indent, lineno);
        if (!val) break;
        node_push(map, key, val);
    }
    return map;
}

static struct sy_node *parse_seq(sy_doc_t *d, int indent)
{
    struct sy_node *seq = node_new(d, SY_SEQ);
    for (sy_line_t *l = cur(d); l && !d->failed; l = cur(d)) {
        if (l->indent != indent || !is_seq_item(l->text)) {
            if (l->indent > indent) fail(d, l->lineno, "unexpected indentation in a sequence");
            break;
        }
        const char *rest = l->text + 1;
        while (*rest == ' ')
            rest++;
        int item_indent = indent + (int)(rest - l->text);
        struct sy_node *item;
        if (*rest && entry_colon(rest) >= 0) {
            /* "- key: v": the item is a map whose first line is this one. */
            l->indent = item_indent;
            l->text = (char *)rest;
            item = parse_map(d, item_indent);
        } else {
            int lineno = l->lineno;
            d->pos++;
            item = parse_value(d, rest, indent, lineno);
        }
        if (!item) break;
        node_push(seq, NULL, item);
    }
    return seq;
}

static struct sy_node *parse_block(sy_doc_t *d, int indent)
{
    sy_line_t *l = cur(d);
    if (!l) return scalar_node(d, xstrdup(""));
    return is_seq_item(l->text) ? parse_seq(d, indent) : parse_map(d, indent);
}

sy_doc_t *sy_parse(const char *text, size_t len, char *err, size_t errlen)
{
    sy_doc_t *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->err = err;
    d->errlen = errlen;
    d->buf = malloc(len + 1);
    if (!d->buf) abort();
    memcpy(d->buf, text, len);
    d->buf[len] = '\0';
    size_t cap = 256;
    d->lines = malloc(cap * sizeof *d->lines);
    if (!d->lines) abort();
    int lineno = 0;
    for (char *p = d->buf; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        lineno++;
        size_t l = strlen(p);
        while (l && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
            p[--l] = '\0';
        int ind = 0;
        while (p[ind] == ' ')
            ind++;
        if (p[ind] == '\t') {
            fail(d, lineno, "tab indentation");
            break;
        }
        /* Blank and comment lines carry nothing (block scalars lose their
         * empty lines, which no schema consumer needs). */
        if (p[ind] != '\0' && p[ind] != '#') {
            if (d->nlines == cap) {
                cap *= 2;
                d->lines = realloc(d->lines, cap * sizeof *d->lines);
                if (!d->lines) abort();
            }
            d->lines[d->nlines++] = (sy_line_t){.indent = ind, .text = p + ind, .lineno = lineno};
        }
        p = nl ? nl + 1 : NULL;
    }
    if (!d->failed) d->root = d->nlines ? parse_block(d, d->lines[0].indent) : scalar_node(d, xstrdup(""));
    if (!d->failed && d->pos < d->nlines)
        fail(d, d->lines[d->pos].lineno, "unexpected text after the document");
    if (d->failed) {
        sy_free(d);
        return NULL;
    }
    return d;
}

sy_doc_t *sy_load(const char *path, char *err, size_t errlen)
{
    unsigned char *data;
    size_t len;
    if (sim_read_file(path, &data, &len, err, errlen) != 0) return NULL;
    char sub[SIM_ERRLEN];
    sy_doc_t *d = sy_parse((const char *)data, len, sub, sizeof sub);
    free(data);
    if (!d) sim_errf(err, errlen, "%s: %s", path, sub);
    return d;
}

void sy_free(sy_doc_t *d)
{
    if (!d) return;
    for (struct sy_node *n = d->all, *next; n; n = next) {
        next = n->next_alloc;
        free(n->text);
        free(n->keys); /* the keys point into buf */
        free(n->vals);
        free(n);
    }
    for (size_t i = 0; i < d->nanchors; i++)
        free(d->anchors[i].name);
    free(d->anchors);
    free(d->lines);
    free(d->buf);
    free(d);
}

const sy_node_t *sy_root(const sy_doc_t *d)
{
    return d ? d->root : NULL;
}

const sy_node_t *sy_get(const sy_node_t *n, const char *key)
{
    if (!n || n->kind != SY_MAP) return NULL;
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->keys[i], key) == 0) return n->vals[i];
    return NULL;
}

const char *sy_str(const sy_node_t *n)
{
    return n && n->kind == SY_SCALAR ? n->text : NULL;
}

const char *sy_get_str(const sy_node_t *n, const char *key)
{
    return sy_str(sy_get(n, key));
}

size_t sy_len(const sy_node_t *n)
{
    return n && n->kind != SY_SCALAR ? n->n : 0;
}

const sy_node_t *sy_at(const sy_node_t *n, size_t i)
{
    return n && n->kind != SY_SCALAR && i < n->n ? n->vals[i] : NULL;
}

const char *sy_key_at(const sy_node_t *n, size_t i)
{
    return n && n->kind == SY_MAP && i < n->n ? n->keys[i] : NULL;
}

bool sy_is_map(const sy_node_t *n)
{
    return n && n->kind == SY_MAP;
}

bool sy_is_seq(const sy_node_t *n)
{
    return n && n->kind == SY_SEQ;
}
