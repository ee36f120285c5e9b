/* test_data.c — tokeniser, Karpathy data set loading, vocabulary. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "testutil.h"

/* ---------------------------------------------------------------- tokeniser */

/* Tokenises text and checks the result against want[] (NULL-terminated). */
static void expect_tokens(const char *text, const char *const *want) {
    char **t;
    int n = imcap_tokenize(text, &t);
    int nw = 0;
    while (want[nw]) nw++;
    cr_expect_eq(n, nw, "\"%s\": %d tokens, expected %d", text, n, nw);
    for (int i = 0; i < n && i < nw; i++)
        cr_expect_str_eq(t[i], want[i], "\"%s\": token %d is \"%s\", expected \"%s\"", text, i, t[i], want[i]);
    imcap_tokens_free(t, n);
}

#define TOKENS(text, ...) expect_tokens(text, (const char *const[]){__VA_ARGS__, NULL})

Test(tokenize, english) {
    TOKENS("A man riding a horse.", "a", "man", "riding", "a", "horse");
    TOKENS("  Two DOGS,   playing-fetch!  ", "two", "dogs", "playing", "fetch");
    TOKENS("it's the dog's ball", "it's", "the", "dog's", "ball");
}

Test(tokenize, empty_and_punctuation_only) {
    char **t = (char **)1;
    cr_expect_eq(imcap_tokenize("", &t), 0);
    cr_expect_null(t);
    cr_expect_eq(imcap_tokenize(" .,;!? -- () ", &t), 0);
    cr_expect_eq(imcap_tokenize(NULL, &t), 0);
}

Test(tokenize, french_apostrophes_and_dashes) {
    /* "Ça" -> "ça" (U+00C7 lower-cased to U+00E7); "—" (U+2014, Pd) separates;
     * the right single quote U+2019 in "bien’s" is written as '. */
    TOKENS("Ça va? L'été—très bien’s", "ça", "va", "l'été", "très", "bien's");
    /* runs of apostrophes are words too: the spec counts them as word characters */
    TOKENS("rock ’n’ roll", "rock", "'n'", "roll");
}

Test(tokenize, greek_cjk_and_others) {
    /* Greek capitals map to lower case one code point at a time: simple case
     * mapping gives σ (U+03C3) for a final Σ, not the final form ς. */
    TOKENS("Η ΓΑΤΑ κάθεται ΟΔΟΣ", "η", "γατα", "κάθεται", "οδοσ");
    /* CJK has no spaces: a run of Lo letters is one word */
    TOKENS("一只猫 在 桌子上。", "一只猫", "在", "桌子上");
    /* Cyrillic, and a titlecase digraph (U+01C5, Lt) -> U+01C6 */
    TOKENS("Кошка \u01C5ak", "кошка", "\u01C6ak");
}

Test(tokenize, digits) {
    /* Nd digits in any script are word characters: ٣ is ARABIC-INDIC DIGIT THREE */
    TOKENS("2 dogs, 3rd place, ٣ cats", "2", "dogs", "3rd", "place", "٣", "cats");
    /* "Unicode digits" read as Nd: superscripts (No) and Roman numerals (Nl)
     * separate words instead of joining them */
    TOKENS("x²y Ⅻ 10", "x", "y", "10");
}

Test(tokenize, combining_marks_separate) {
    /* no normalisation: a decomposed é (e + U+0301, category Mn) splits the word */
    TOKENS("cafe\u0301 caf\u00e9", "cafe", "café");
}

Test(tokenize, invalid_utf8_is_a_separator) {
    /* a stray continuation byte, a truncated sequence at the end, an overlong
     * "/", an encoded surrogate: each bad byte separates, nothing crashes */
    TOKENS("ab\xff" "cd\xc3", "ab", "cd");
    TOKENS("x\xc0\xafy", "x", "y");
    TOKENS("p\xed\xa0\x80q", "p", "q");
    TOKENS("\x80\x80\x80", NULL);
}

/* ---------------------------------------------------------------- data set */

static const char *write_tmp(const char *dir, const char *name, const char *text) {
    static char path[8][4096];
    static int slot;
    char *p = path[slot++ & 7];
    snprintf(p, 4096, "%s/%s", dir, name);
    tu_write(p, text, strlen(text));
    return p;
}

static int has_warning(const imcap_dataset *ds, const char *a, const char *b) {
    for (int i = 0; i < ds->n_warnings; i++)
        if (strstr(ds->warnings[i], a) && (!b || strstr(ds->warnings[i], b))) return 1;
    return 0;
}


Test(dataset, karpathy_fields) {
    const char *dir = tu_tmpdir("ds_fields");
    const char *p = write_tmp(dir, "d.json",
        "{\"dataset\": \"coco\", \"images\": ["
        " {\"filepath\": \"val2014\", \"filename\": \"a.jpg\", \"split\": \"test\", \"cocoid\": 391895, \"imgid\": 3,"
        "  \"sentences\": [{\"tokens\": [\"ignored\"], \"raw\": \"A Man on a BIKE.\"},"
        "                  {\"tokens\": [\"Only\", \"TOKENS\", \"here\"]}]},"
        " {\"filename\": \"b.png\", \"split\": \"restval\", \"imgid\": 4, \"sentences\": [],"
        "  \"objects\": [{\"shape\": \"circle\", \"bbox_norm\": [0.1, 0.2, 0.3, 0.4]}], \"mentions\": [[0, 1]]},"
        " {\"filename\": \"c.png\", \"split\": \"weird\"}"
        "]}");
    imcap_dataset ds;
    imcap_error err;
    cr_assert_eq(imcap_dataset_load(p, "/data/root/", &ds, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 3);
    cr_expect_eq(ds.n_refused, 0);
    const imcap_data_image *a = &ds.images[0], *b = &ds.images[1], *c = &ds.images[2];
    cr_expect_str_eq(a->path, "/data/root/val2014/a.jpg");
    cr_expect_str_eq(a->filepath, "val2014");
    cr_expect_str_eq(a->id, "391895", "cocoid wins over imgid");
    cr_expect_eq(a->split, IMCAP_SPLIT_TEST);
    cr_assert_eq(a->n_sentences, 2);
    cr_expect_str_eq(a->sentences[0].raw, "A Man on a BIKE.");
    cr_assert_eq(a->sentences[0].n_tokens, 5, "tokenised from raw, not from the file's tokens");
    cr_expect_str_eq(a->sentences[0].tokens[4], "bike");
    cr_assert_eq(a->sentences[1].n_tokens, 3, "no raw: the file's tokens joined and tokenised again");
    cr_expect_str_eq(a->sentences[1].tokens[1], "tokens");
    cr_expect_null(a->objects_json);
    cr_expect_str_eq(b->path, "/data/root/b.png");
    cr_expect_null(b->filepath);
    cr_expect_str_eq(b->id, "4");
    cr_expect_eq(b->split, IMCAP_SPLIT_RESTVAL);
    cr_expect_eq(b->n_sentences, 0);
    cr_assert_not_null(b->objects_json);
    cr_expect(strstr(b->objects_json, "\"circle\"") != NULL, "objects kept as JSON text: %s", b->objects_json);
    cr_assert_not_null(b->extra_json);
    cr_expect_str_eq(b->extra_json, "[[0,1]]");
    cr_expect_str_eq(c->id, "c.png", "no cocoid / imgid: the file name");
    cr_expect_eq(c->split, IMCAP_SPLIT_OTHER);
    imcap_dataset_free(&ds);
    imcap_dataset_free(&ds); /* freeing twice is harmless: the first free zeroes it */
}

Test(dataset, no_image_root_keeps_paths_relative) {
    const char *dir = tu_tmpdir("ds_rel");
    const char *p = write_tmp(dir, "d.json",
        "{\"images\": [{\"filepath\": \"sub/dir\", \"filename\": \"x.png\", \"split\": \"train\"}]}");
    imcap_dataset ds;
    imcap_error err;
    cr_assert_eq(imcap_dataset_load(p, NULL, &ds, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_str_eq(ds.images[0].path, "sub/dir/x.png");
    imcap_dataset_free(&ds);
}

Test(dataset, path_escapes_are_refused) {
    const char *dir = tu_tmpdir("ds_escape");
    const char *p = write_tmp(dir, "d.json",
        "{\"images\": ["
        " {\"filename\": \"ok.png\", \"split\": \"test\"},"
        " {\"filename\": \"../secret.png\", \"split\": \"test\"},"
        " {\"filepath\": \"..\", \"filename\": \"up.png\", \"split\": \"test\"},"
        " {\"filepath\": \"a/../../b\", \"filename\": \"deep.png\", \"split\": \"test\"},"
        " {\"filename\": \"/etc/passwd\", \"split\": \"test\"},"
        " {\"filepath\": \"/tmp\", \"filename\": \"abs.png\", \"split\": \"test\"},"
        " {\"filepath\": \"x/..\", \"filename\": \"trail.png\", \"split\": \"test\"},"
        " {\"filename\": \"a..b.png\", \"split\": \"test\"},"
        " {\"filepath\": \"..hidden\", \"filename\": \"dots.png\", \"split\": \"test\"}"
        "]}");
    imcap_dataset ds;
    imcap_error err;
    cr_assert_eq(imcap_dataset_load(p, "root", &ds, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(ds.n_refused, 6);
    cr_assert_eq(ds.n, 3, "ok.png, a..b.png and ..hidden/dots.png stay: '..' only matters as a whole component");
    cr_expect_str_eq(ds.images[0].path, "root/ok.png");
    cr_expect_str_eq(ds.images[1].path, "root/a..b.png");
    cr_expect_str_eq(ds.images[2].path, "root/..hidden/dots.png");
    cr_expect(has_warning(&ds, "images[1]", "../secret.png"), "the warning names the entry");
    cr_expect(has_warning(&ds, "images[2]", "up.png"));
    cr_expect(has_warning(&ds, "images[3]", "a/../../b"));
    cr_expect(has_warning(&ds, "images[4]", "absolute"));
    cr_expect(has_warning(&ds, "images[5]", "/tmp"));
    cr_expect(has_warning(&ds, "images[6]", "trail.png"));
    cr_expect(has_warning(&ds, p, NULL), "warnings name the data set file");
    imcap_dataset_free(&ds);
}

Test(dataset, missing_images_load_fine) {
    /* image files are not opened at load time: the reader of each image
     * reports and skips the missing ones */
    const char *dir = tu_tmpdir("ds_missing");
    const char *p = write_tmp(dir, "d.json",
        "{\"images\": [{\"filename\": \"nowhere1.jpg\", \"split\": \"test\", \"sentences\": [{\"raw\": \"a cat\"}]},"
        "              {\"filename\": \"nowhere2.jpg\", \"split\": \"test\", \"sentences\": [{\"raw\": \"a dog\"}]}]}");
    imcap_dataset ds;
    imcap_error err;
    cr_assert_eq(imcap_dataset_load(p, dir, &ds, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(ds.n, 2);
    cr_expect_eq(ds.n_refused, 0);
    cr_expect_eq(ds.n_warnings, 0);
    imcap_dataset_free(&ds);
}

Test(dataset, malformed_entries_are_skipped_with_warnings) {
    const char *dir = tu_tmpdir("ds_entries");
    const char *p = write_tmp(dir, "d.json",
        "{\"images\": [42, {\"split\": \"test\"}, {\"filename\": 7},"
        " {\"filename\": \"s.png\", \"sentences\": {\"raw\": \"x\"}},"
        " {\"filename\": \"fp.png\", \"filepath\": 3},"
        " {\"filename\": \"good.png\", \"sentences\": [{\"raw\": \"one\"}, {\"sentid\": 2}, 5, {\"raw\": \"two\"}]}]}");
    imcap_dataset ds;
    imcap_error err;
    cr_assert_eq(imcap_dataset_load(p, NULL, &ds, &err), IMCAP_OK, "%s", err.msg);
    cr_expect_eq(ds.n_refused, 5);
    cr_assert_eq(ds.n, 1);
    cr_expect_eq(ds.images[0].n_sentences, 2, "captions without text are skipped, the image stays");
    cr_expect(has_warning(&ds, "images[0]", "not an object"));
    cr_expect(has_warning(&ds, "images[1]", "filename"));
    cr_expect(has_warning(&ds, "images[2]", "filename"));
    cr_expect(has_warning(&ds, "images[3]", "sentences"));
    cr_expect(has_warning(&ds, "images[4]", "filepath"));
    cr_expect(has_warning(&ds, "images[5]", "sentences[1]"));
    cr_expect(has_warning(&ds, "images[5]", "sentences[2]"));
    imcap_dataset_free(&ds);
}

Test(dataset, malformed_files_are_clear_errors) {
    const char *dir = tu_tmpdir("ds_bad");
    struct { const char *name, *text, *expect; } cases[] = {
        {"trunc.json", "{\"images\": [{\"filename\": \"a.png\",\n \"split\": ", "line 2"},
        {"garbage.json", "this is not json", "not valid JSON"},
        {"trailing.json", "{\"images\": []} extra", "not valid JSON"},
        {"noimages.json", "{\"pictures\": []}", "no \"images\""},
        {"notarray.json", "{\"images\": {}}", "\"images\" is not an array"},
        {"toplist.json", "[1, 2]", "not a JSON object"},
        {"empty.json", "", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_tmp(dir, cases[i].name, cases[i].text);
        imcap_dataset ds;
        imcap_error err;
        cr_expect_eq(imcap_dataset_load(p, NULL, &ds, &err), IMCAP_E_FORMAT, "%s", cases[i].name);
        cr_expect(strstr(err.msg, p) != NULL, "the message names the file: %s", err.msg);
        cr_expect(strstr(err.msg, cases[i].expect) != NULL, "%s: \"%s\" lacks \"%s\"", cases[i].name, err.msg,
                  cases[i].expect);
        cr_expect_eq(ds.n, 0);
        cr_expect_null(ds.images);
    }
    /* a NUL byte inside */
    const char nul[] = "{\"images\": [\0]}";
    char path[4096];
    snprintf(path, sizeof path, "%s/nul.json", dir);
    tu_write(path, nul, sizeof nul - 1);
    imcap_dataset ds;
    imcap_error err;
    cr_expect_eq(imcap_dataset_load(path, NULL, &ds, &err), IMCAP_E_FORMAT);
    cr_expect(strstr(err.msg, "NUL") != NULL, "%s", err.msg);
    snprintf(path, sizeof path, "%s/absent.json", dir);
    cr_expect_eq(imcap_dataset_load(path, NULL, &ds, &err), IMCAP_E_IO);
    cr_expect(strstr(err.msg, "absent.json") != NULL, "%s", err.msg);
}

Test(dataset, split_names) {
    cr_expect_eq(imcap_split_parse("train"), IMCAP_SPLIT_TRAIN);
    cr_expect_eq(imcap_split_parse("val"), IMCAP_SPLIT_VAL);
    cr_expect_eq(imcap_split_parse("test"), IMCAP_SPLIT_TEST);
    cr_expect_eq(imcap_split_parse("restval"), IMCAP_SPLIT_RESTVAL);
    cr_expect_eq(imcap_split_parse("Test"), IMCAP_SPLIT_OTHER);
    cr_expect_eq(imcap_split_parse(NULL), IMCAP_SPLIT_OTHER);
    for (int s = IMCAP_SPLIT_TRAIN; s < IMCAP_SPLIT_OTHER; s++)
        cr_expect_eq(imcap_split_parse(imcap_split_name((imcap_split)s)), (imcap_split)s);
}

/* ---------------------------------------------------------------- vocabulary */

Test(vocab, order_and_min_count) {
    const char *dir = tu_tmpdir("vocab");
    /* counts over train + restval (images 1, 2, 3): a 2+1+1 = 4, dog 1+1+1 = 3,
     * zoo 1+1 = 2, été 1+1 = 2, apple 1+1 = 2, ate 1, an 1, cat 1, ok 1; the
     * val and test captions ("never never never", "unseen never") are not counted. */
    const char *p = write_tmp(dir, "d.json",
        "{\"images\": ["
        " {\"filename\": \"1\", \"split\": \"train\", \"sentences\": [{\"raw\": \"A dog, a zoo. Été!\"}, {\"raw\": \"dog apple\"}]},"
        " {\"filename\": \"2\", \"split\": \"restval\", \"sentences\": [{\"raw\": \"a DOG ate an apple cat\"}]},"
        " {\"filename\": \"3\", \"split\": \"train\", \"sentences\": [{\"raw\": \"a zoo été ok\"}]},"
        " {\"filename\": \"4\", \"split\": \"val\", \"sentences\": [{\"raw\": \"never never never\"}]},"
        " {\"filename\": \"5\", \"split\": \"test\", \"sentences\": [{\"raw\": \"unseen never\"}]}"
        "]}");
    imcap_dataset ds;
    imcap_error err;
    cr_assert_eq(imcap_dataset_load(p, NULL, &ds, &err), IMCAP_OK, "%s", err.msg);
    imcap_vocab v;
    cr_assert_eq(imcap_vocab_build(&ds, 2, &v, &err), IMCAP_OK, "%s", err.msg);
    /* a 4, dog 3, then the count-2 words in UTF-8 byte order: "apple" < "zoo" <
     * "été" (0xC3 0xA9 sorts after every ASCII letter); "ate", "an", "cat" and
     * "ok" have count 1 < min_count */
    const char *want[] = {"<pad>", "<start>", "<end>", "<unk>", "a", "dog", "apple", "zoo", "été"};
    cr_assert_eq(v.n, 9);
    for (int i = 0; i < v.n; i++) cr_expect_str_eq(v.words[i], want[i], "id %d", i);

    imcap_vocab_index *ix = imcap_vocab_index_new(&v);
    cr_assert_not_null(ix);
    for (int i = 0; i < v.n; i++) cr_expect_eq(imcap_vocab_lookup(ix, want[i]), i);
    cr_expect_eq(imcap_vocab_lookup(ix, "cat"), IMCAP_TOK_UNK);
    cr_expect_eq(imcap_vocab_lookup(ix, "never"), IMCAP_TOK_UNK);
    cr_expect_eq(imcap_vocab_lookup(ix, "Dog"), IMCAP_TOK_UNK, "lookups are exact: callers tokenise first");
    imcap_vocab_index_free(ix);
    imcap_vocab_free(&v);

    /* min_count 1 keeps everything seen in train + restval: 4 specials + 9 words */
    cr_assert_eq(imcap_vocab_build(&ds, 1, &v, &err), IMCAP_OK);
    cr_expect_eq(v.n, 13);
    cr_expect_str_eq(v.words[9], "an", "count-1 words in byte order: an, ate, cat, ok");
    cr_expect_str_eq(v.words[12], "ok");
    imcap_vocab_free(&v);
    imcap_dataset_free(&ds);
}

Test(vocab, index_is_a_hash_table_that_grows) {
    /* many words force the table to grow; every one must still be found */
    imcap_vocab v = {0};
    v.n = 5000;
    v.words = calloc((size_t)v.n, sizeof *v.words);
    const char *sp[4] = {"<pad>", "<start>", "<end>", "<unk>"};
    for (int i = 0; i < v.n; i++) {
        char w[32];
        if (i < 4) snprintf(w, sizeof w, "%s", sp[i]);
        else snprintf(w, sizeof w, "w%d", i);
        v.words[i] = strdup(w);
    }
    imcap_vocab_index *ix = imcap_vocab_index_new(&v);
    imcap_vocab_free(&v); /* the index keeps its own copies */
    cr_assert_not_null(ix);
    int bad = 0;
    for (int i = 4; i < 5000; i++) {
        char w[32];
        snprintf(w, sizeof w, "w%d", i);
        if (imcap_vocab_lookup(ix, w) != i) bad++;
    }
    cr_expect_eq(bad, 0);
    cr_expect_eq(imcap_vocab_lookup(ix, "w5000"), IMCAP_TOK_UNK);
    cr_expect_eq(imcap_vocab_lookup(ix, "<end>"), IMCAP_TOK_END);
    imcap_vocab_index_free(ix);
}

/* fuzz_dataset's first finding: an id beyond int64 ("imgid": 1e119) was
 * cast to int64_t, which is undefined; it is kept as the number's text. */
Test(dataset, id_beyond_int64_is_its_text) {
    imcap_dataset ds;
    imcap_error err;
    const char *p = tu_src("tests/data/fuzz-regressions/fuzz_dataset/imgid_1e119.json");
    cr_assert_eq(imcap_dataset_load(p, tu_tmpdir("ds_bigid"), &ds, &err), IMCAP_OK, "%s", err.msg);
    cr_assert_geq(ds.n, 1);
    char want[64];
    snprintf(want, sizeof want, "%.17g", 1e119);
    cr_expect_str_eq(ds.images[0].id, want);
    imcap_dataset_free(&ds);
}
