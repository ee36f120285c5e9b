/* test_viewer.c — the HTML attention viewer in a real browser.
 *
 * Headless Chromium (Debian's `chromium`) opens a viewer written by the
 * library from disk (file://) and is driven over the DevTools protocol on
 * --remote-debugging-pipe (NUL-separated JSON on fds 3 and 4), the way
 * Puppeteer and Playwright drive it: Input.dispatchMouseEvent moves the
 * mouse and clicks through the browser's own input pipeline, then
 * Runtime.evaluate reads what the page shows. No npm, no network.
 *
 * Without a Chromium the test is SKIPPED (never passed): install it with
 * `apt-get install -y chromium`, or point IMCAP_CHROMIUM at a binary. */
#include <criterion/criterion.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "imcap.h"
#include "render/render.h"
#include "testutil.h"
#include "util/util.h"

/* ------------------------------------------------------------ browser */

static const char *find_chromium(void) {
    static char path[4096];
    const char *env = getenv("IMCAP_CHROMIUM");
    if (env && *env) return access(env, X_OK) == 0 ? env : NULL;
    const char *names[] = {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"};
    const char *p = getenv("PATH");
    if (!p) p = "/usr/bin:/bin";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *s = p;
        while (*s) {
            const char *e = strchr(s, ':');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            snprintf(path, sizeof path, "%.*s/%s", (int)n, s, names[i]);
            if (n && access(path, X_OK) == 0) return path;
            s += n + (e ? 1 : 0);
        }
    }
    return NULL;
}

typedef struct {
    pid_t pid;
    int to, from;  /* our ends: commands to fd 3, replies from fd 4 */
    int next_id;
    char *buf;     /* bytes read but not yet consumed */
    size_t len, cap;
    char session[128];
} browser;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void browser_start(browser *b, const char *exe, const char *profile, const char *url, const char *log) {
    int in[2], out[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    memset(b, 0, sizeof *b);
    b->next_id = 1;
    b->pid = fork();
    cr_assert_geq(b->pid, 0, "fork failed");
    if (b->pid == 0) {
        /* Move our ends out of the way before placing them on 3 and 4. */
        int r = fcntl(in[0], F_DUPFD, 10), w = fcntl(out[1], F_DUPFD, 10);
        dup2(r, 3);
        dup2(w, 4);
        for (int fd = 5; fd < 64; fd++) close(fd);
        int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        if (lf >= 0) dup2(lf, 1), dup2(lf, 2);
        char udd[4400];
        snprintf(udd, sizeof udd, "--user-data-dir=%s", profile);
        execl(exe, exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-extensions", "--disable-default-apps", "--mute-audio", "--window-size=1100,900",
              "--remote-debugging-pipe", udd, url, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    b->to = in[1];
    b->from = out[0];
    signal(SIGPIPE, SIG_IGN);
}

static void browser_stop(browser *b) {
    if (b->pid <= 0) return;
    close(b->to);
    close(b->from);
    /* Closing the pipe makes Chromium exit; give it a moment, then insist
     * (only on the process we started). */
    for (int i = 0; i < 50; i++) {
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) goto done;
        usleep(100000);
    }
    kill(b->pid, SIGTERM);
    for (int i = 0; i < 30; i++) {
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) goto done;
        usleep(100000);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
done:
    b->pid = 0;
    free(b->buf);
}

/* Sends a command (params: JSON object text or NULL) and returns the reply
 * with the same id (events in between are skipped), or NULL on timeout. */
static cJSON *cdp(browser *b, const char *method, const char *params, int with_session) {
    int id = b->next_id++;
    imcap_buf m = {0};
    imcap_buf_printf(&m, "{\"id\":%d,\"method\":\"%s\"", id, method);
    if (with_session) imcap_buf_printf(&m, ",\"sessionId\":\"%s\"", b->session);
    if (params) imcap_buf_printf(&m, ",\"params\":%s", params);
    imcap_buf_append(&m, "}", 2); /* the NUL terminates the message */
    size_t off = 0;
    while (off < m.len) {
        ssize_t w = write(b->to, m.s + off, m.len - off);
        if (w <= 0) {
            imcap_buf_free(&m);
            return NULL;
        }
        off += (size_t)w;
    }
    imcap_buf_free(&m);
    double deadline = now_s() + 30.0;
    for (;;) {
        char *z = b->len ? memchr(b->buf, 0, b->len) : NULL;
        if (z) {
            cJSON *msg = cJSON_Parse(b->buf);
            size_t used = (size_t)(z - b->buf) + 1;
            memmove(b->buf, b->buf + used, b->len - used);
            b->len -= used;
            cJSON *jid = cJSON_GetObjectItem(msg, "id");
            if (cJSON_IsNumber(jid) && jid->valueint == id) return msg;
            cJSON_Delete(msg);
            continue;
        }
        double left = deadline - now_s();
        if (left <= 0) return NULL;
        struct pollfd pf = {b->from, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(left * 1000) + 1);
        if (pr <= 0) continue;
        if (b->cap - b->len < 65536) {
            b->cap = b->cap ? b->cap * 2 : 1 << 20;
            b->buf = realloc(b->buf, b->cap);
            cr_assert_not_null(b->buf);
        }
        ssize_t r = read(b->from, b->buf + b->len, b->cap - b->len);
        if (r <= 0) return NULL; /* the browser went away */
        b->len += (size_t)r;
    }
}

/* Evaluates a JS expression in the page; returns its value as a string
 * (JSON.stringify'd in the page), malloc'd, or NULL. */
static char *eval(browser *b, const char *expr) {
    cJSON *p = cJSON_CreateObject();
    imcap_buf e = {0};
    imcap_buf_printf(&e, "JSON.stringify((function(){return (%s);})())", expr);
    cJSON_AddStringToObject(p, "expression", e.s);
    cJSON_AddTrueToObject(p, "returnByValue");
    char *ps = cJSON_PrintUnformatted(p);
    cJSON *reply = cdp(b, "Runtime.evaluate", ps, 1);
    free(ps);
    cJSON_Delete(p);
    imcap_buf_free(&e);
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "result"), "result"), "value");
    char *out = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
    cJSON_Delete(reply);
    return out;
}

static int eval_int(browser *b, const char *expr) {
    char *s = eval(b, expr);
    int v = s ? atoi(s) : -999;
    free(s);
    return v;
}

static void mouse(browser *b, const char *type, double x, double y) {
    char p[256];
    snprintf(p, sizeof p, "{\"type\":\"%s\",\"x\":%.1f,\"y\":%.1f,\"button\":\"%s\",\"clickCount\":%d}", type, x, y,
             strcmp(type, "mouseMoved") ? "left" : "none", strcmp(type, "mouseMoved") ? 1 : 0);
    cJSON *r = cdp(b, "Input.dispatchMouseEvent", p, 1);
    cr_assert_not_null(r, "no reply to %s", type);
    cJSON_Delete(r);
}

static void key(browser *b, const char *name, int code) {
    char p[256];
    for (int up = 0; up < 2; up++) {
        snprintf(p, sizeof p, "{\"type\":\"%s\",\"key\":\"%s\",\"code\":\"%s\",\"windowsVirtualKeyCode\":%d}",
                 up ? "keyUp" : "rawKeyDown", name, name, code);
        cJSON *r = cdp(b, "Input.dispatchKeyEvent", p, 1);
        cr_assert_not_null(r, "no reply to key %s", name);
        cJSON_Delete(r);
    }
}

/* Centre of word k of hypothesis h in viewport coordinates (scrolled into
 * view first). */
static void word_centre(browser *b, int h, int k, double *x, double *y) {
    char e[512];
    snprintf(e, sizeof e,
             "(function(){var w=document.querySelectorAll('.hyp')[%d].querySelectorAll('button.w')[%d];"
             "w.scrollIntoView({block:'center'});var r=w.getBoundingClientRect();"
             "return [r.left+r.width/2,r.top+r.height/2];})()",
             h, k);
    char *s = eval(b, e);
    cr_assert_not_null(s, "word %d/%d not found", h, k);
    cr_assert_eq(sscanf(s, "[%lf,%lf]", x, y), 2, "bad rect %s", s);
    free(s);
}

/* What the page shows: "h,k" from the view's data attributes. */
static char *shown(browser *b) {
    return eval(b, "document.getElementById('view').getAttribute('data-h')+','+"
                   "document.getElementById('view').getAttribute('data-k')");
}

/* 1 when the view shows exactly the image of word k of hypothesis h. */
static int shows_word(browser *b, int h, int k) {
    char e[512];
    snprintf(e, sizeof e,
             "document.getElementById('view').getAttribute('src')==="
             "document.querySelectorAll('.hyp')[%d].querySelectorAll('button.w')[%d].getAttribute('data-img')?1:0",
             h, k);
    return eval_int(b, e) == 1;
}

/* The displayed pixel at (x, y) of the view's natural-size image, decoded
 * by the browser, as "r,g,b", once the image has loaded. */
static int view_pixel(browser *b, int x, int y, int rgb[3]) {
    char e[700];
    snprintf(e, sizeof e,
             "(function(){var v=document.getElementById('view');if(!v.complete||!v.naturalWidth)return '';"
             "var c=document.createElement('canvas');c.width=v.naturalWidth;c.height=v.naturalHeight;"
             "var g=c.getContext('2d');g.drawImage(v,0,0);var d=g.getImageData(%d,%d,1,1).data;"
             "return d[0]+','+d[1]+','+d[2];})()",
             x, y);
    for (int tries = 0; tries < 50; tries++) {
        char *s = eval(b, e);
        int ok = s && sscanf(s, "\"%d,%d,%d\"", &rgb[0], &rgb[1], &rgb[2]) == 3;
        if (!ok && s) ok = sscanf(s, "%d,%d,%d", &rgb[0], &rgb[1], &rgb[2]) == 3;
        free(s);
        if (ok) return 0;
        usleep(100000);
    }
    return -1;
}

/* ------------------------------------------------------------ fixture */

/* Smooth image (JPEG-friendly) and a 3-hypothesis result whose word k of
 * hypothesis h attends one-hot to cell (h + 2k) mod 16 of a 4x4 grid. */
static imcap_result *fixture(imcap_image *img) {
    img->width = 400, img->height = 300;
    img->rgb = malloc(400 * 300 * 3);
    for (int y = 0; y < 300; y++)
        for (int x = 0; x < 400; x++) {
            unsigned char *p = img->rgb + 3 * (y * 400 + x);
            p[0] = (unsigned char)(60 + x / 4), p[1] = (unsigned char)(80 + y / 4), p[2] = 120;
        }
    const char *words[] = {"a", "<b>red</b>", "circle", "\"left\"", "&", "<end>"};
    imcap_result *r = calloc(1, sizeof *r);
    r->grid_h = 4, r->grid_w = 4, r->n_hyps = 3;
    r->hyps = calloc(3, sizeof *r->hyps);
    for (int h = 0; h < 3; h++) {
        imcap_hypothesis *hy = &r->hyps[h];
        int T = 6 - h;
        hy->n_tokens = T;
        hy->tokens = calloc(T, sizeof(int));
        hy->logprobs = calloc(T, sizeof(float));
        hy->words = calloc(T, sizeof(char *));
        hy->attention = calloc((size_t)T * 16, sizeof(float));
        imcap_buf text = {0};
        for (int k = 0; k < T; k++) {
            const char *w = k == T - 1 ? "<end>" : words[(k + h) % 5];
            hy->words[k] = strdup(w);
            hy->tokens[k] = k == T - 1 ? IMCAP_TOK_END : 5 + k;
            hy->logprobs[k] = -0.2f * (k + 1) - h;
            hy->score += hy->logprobs[k];
            hy->attention[k * 16 + (h + 2 * k) % 16] = 1.0f;
            if (k < T - 1) imcap_buf_printf(&text, "%s%s", k ? " " : "", w);
        }
        hy->finished = 1;
        hy->text = text.s;
    }
    return r;
}

/* ------------------------------------------------------------ test */

Test(viewer, hover_click_and_keys_change_the_overlay, .timeout = 180) {
    const char *exe = find_chromium();
    if (!exe) cr_skip_test("SKIPPED: no Chromium found (apt-get install -y chromium, or set IMCAP_CHROMIUM)");

    imcap_image img;
    imcap_result *r = fixture(&img);
    imcap_render_options o;
    imcap_render_options_default(&o);
    const char *dir = tu_tmpdir("viewer");
    imcap_error err;
    cr_assert_eq(imcap_render_write(&img, r, dir, "view", "view <test> & \"page\".png", &o, IMCAP_RENDER_HTML, &err),
                 IMCAP_OK, "%s", err.msg);
    char url[4300], profile[4300], log[4300];
    snprintf(url, sizeof url, "file://%s/view.html", dir);
    snprintf(profile, sizeof profile, "%s/profile", dir);
    snprintf(log, sizeof log, "%s/chromium.log", dir);
    mkdir(profile, 0700);

    browser b;
    browser_start(&b, exe, profile, url, log);
    /* Find the page and attach to it. */
    const char *target = NULL;
    cJSON *targets = NULL;
    for (int tries = 0; tries < 100 && !target; tries++) {
        cJSON_Delete(targets);
        targets = cdp(&b, "Target.getTargets", NULL, 0);
        cr_assert_not_null(targets, "Chromium did not answer on the DevTools pipe (log: %s)", log);
        cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(cJSON_GetObjectItem(targets, "result"), "targetInfos")) {
            cJSON *type = cJSON_GetObjectItem(t, "type");
            if (cJSON_IsString(type) && !strcmp(type->valuestring, "page"))
                target = cJSON_GetObjectItem(t, "targetId")->valuestring;
        }
        if (!target) usleep(100000);
    }
    cr_assert_not_null(target, "no page target");
    char p[512];
    snprintf(p, sizeof p, "{\"targetId\":\"%s\",\"flatten\":true}", target);
    cJSON *att = cdp(&b, "Target.attachToTarget", p, 0);
    cJSON *sid = cJSON_GetObjectItem(cJSON_GetObjectItem(att, "result"), "sessionId");
    cr_assert(cJSON_IsString(sid), "attachToTarget failed");
    snprintf(b.session, sizeof b.session, "%s", sid->valuestring);
    cJSON_Delete(att);
    cJSON_Delete(targets);

    int ready = 0;
    for (int tries = 0; tries < 100 && !ready; tries++) {
        ready = eval_int(&b, "document.readyState==='complete'&&!!document.getElementById('view')?1:0") == 1;
        if (!ready) usleep(100000);
    }
    cr_assert(ready, "the viewer did not load");
    /* The page's heading is the escaped title, shown as text. */
    char *title = eval(&b, "document.querySelector('h1').textContent");
    cr_expect_str_eq(title, "\"view <test> & \\\"page\\\".png\"");
    free(title);

    /* Initially: word 0 of the best caption. */
    char *s = shown(&b);
    cr_expect_str_eq(s, "\"0,0\"");
    free(s);
    cr_expect(shows_word(&b, 0, 0));
    /* The overlay of word 0 puts the peak on cell (h + 2k) mod 16 = 0; word
     * 2's on cell 4 = (row 1, col 0). Compare the displayed pixel at cell 4's
     * centre, (50, 112) of the 400x300 image (shown at its own size: between
     * the viewer's 384 minimum and the 512 cap), before and after. */
    imcap_image w0, w2;
    cr_assert_eq(imcap_render_word(&img, r, 0, 0, &o, &w0, &err), IMCAP_OK);
    cr_assert_eq(imcap_render_word(&img, r, 0, 2, &o, &w2, &err), IMCAP_OK);
    const unsigned char *e0 = w0.rgb + 3 * (112 * 400 + 50), *e2 = w2.rgb + 3 * (112 * 400 + 50);
    int before[3], after[3];
    cr_assert_eq(view_pixel(&b, 50, 112, before), 0, "view never loaded");

    /* Click word 2 with the mouse. */
    double x, y;
    word_centre(&b, 0, 2, &x, &y);
    mouse(&b, "mouseMoved", x, y);
    mouse(&b, "mousePressed", x, y);
    mouse(&b, "mouseReleased", x, y);
    s = shown(&b);
    cr_expect_str_eq(s, "\"0,2\"", "after clicking word 2 the view shows %s", s);
    free(s);
    cr_expect(shows_word(&b, 0, 2), "the shown image is word 2's overlay");
    cr_assert_eq(view_pixel(&b, 50, 112, after), 0, "overlay never loaded");
    int d_before = 0, d_after = 0, d_changed = 0;
    for (int c = 0; c < 3; c++) {
        if (abs(before[c] - e0[c]) > d_before) d_before = abs(before[c] - e0[c]);
        if (abs(after[c] - e2[c]) > d_after) d_after = abs(after[c] - e2[c]);
        d_changed += abs(e2[c] - e0[c]);
    }
    cr_expect_gt(d_changed, 60, "the fixture's two overlays differ at that pixel");
    /* JPEG q90 of a smooth image: within a few levels of the library's pixels. */
    cr_expect_leq(d_before, 12, "before: shown %d,%d,%d, word 0 has %d,%d,%d", before[0], before[1], before[2], e0[0],
                  e0[1], e0[2]);
    cr_expect_leq(d_after, 12, "after: shown %d,%d,%d, word 2 has %d,%d,%d", after[0], after[1], after[2], e2[0],
                  e2[1], e2[2]);

    /* Keys: right steps to word 3, left twice to word 1. */
    key(&b, "ArrowRight", 39);
    s = shown(&b);
    cr_expect_str_eq(s, "\"0,3\"", "ArrowRight: %s", s);
    free(s);
    key(&b, "ArrowLeft", 37);
    key(&b, "ArrowLeft", 37);
    s = shown(&b);
    cr_expect_str_eq(s, "\"0,1\"", "ArrowLeft x2: %s", s);
    free(s);
    cr_expect(shows_word(&b, 0, 1));

    /* Hover alone (no click) shows word 4. */
    word_centre(&b, 0, 4, &x, &y);
    mouse(&b, "mouseMoved", x, y);
    s = shown(&b);
    cr_expect_str_eq(s, "\"0,4\"", "hover: %s", s);
    free(s);
    cr_expect(shows_word(&b, 0, 4));

    /* An alternative hypothesis can be viewed too. */
    cr_expect_eq(eval_int(&b, "document.querySelectorAll('.hyp').length"), 3);
    word_centre(&b, 2, 1, &x, &y);
    mouse(&b, "mouseMoved", x, y);
    mouse(&b, "mousePressed", x, y);
    mouse(&b, "mouseReleased", x, y);
    s = shown(&b);
    cr_expect_str_eq(s, "\"2,1\"", "hypothesis 3, word 2: %s", s);
    free(s);
    cr_expect(shows_word(&b, 2, 1));
    cr_expect_eq(eval_int(&b, "document.querySelectorAll('.hyp')[2].classList.contains('sel')?1:0"), 1);

    /* Escaped words come out as text, not markup. */
    cr_expect_eq(eval_int(&b, "document.querySelectorAll('b').length"), 0, "no <b> element from the word <b>red</b>");
    char *w = eval(&b, "document.querySelectorAll('.hyp')[0].querySelectorAll('button.w')[1].getAttribute('data-word')");
    cr_expect_str_eq(w, "\"<b>red</b>\"");
    free(w);

    browser_stop(&b);
    imcap_image_free(&w0);
    imcap_image_free(&w2);
    imcap_image_free(&img);
    imcap_result_free(r);
}

/* Criterion's own main, except that a run without a browser exits 77, which
 * Meson reports as SKIP instead of OK. */
int main(int argc, char *argv[]) {
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    if (result == 0 && !find_chromium()) {
        fprintf(stderr, "test_viewer: SKIPPED: no Chromium found (apt-get install -y chromium, or set IMCAP_CHROMIUM)\n");
        return 77;
    }
    return result;
}
