#!/usr/bin/env python3
"""Reference BLEU-1..4, CIDEr-D and ROUGE-L, ported line by line from the COCO
caption evaluation toolkit (pycocoevalcap: bleu/bleu_scorer.py, bleu/bleu.py,
cider/cider_scorer.py, cider/cider.py, rouge/rouge.py), standard library only.

It produces the expected numbers of imcap's metric tests (tests/data/eval/),
so the C tests never run Python. Differences from the toolkit, none of which
changes a result beyond the last bits of a double:
  - numpy's log, sqrt and mean are math.log, math.sqrt and sum()/len();
  - no PTB tokenizer (Java): captions are taken as already tokenised, words
    separated by spaces, which is what the toolkit's scorers receive after
    its tokenizer ran; imcap feeds its spec tokens the same way.

Input (JSON):  {"candidates": {"id": "a caption", ...},
                "references": {"id": ["a reference", ...], ...}}
Output (JSON on stdout): Bleu_1..Bleu_4, CIDEr, ROUGE_L, the BLEU corpus
counts and the per-image CIDEr-D and ROUGE-L scores.

usage: scripts/coco_metrics_reference.py INPUT.json > EXPECTED.json
"""
import json
import math
import sys
from collections import defaultdict


# ----------------------------------------------------------------- BLEU
# bleu_scorer.py (David Chiang, Hao Fang, Tsung-Yi Lin)

def bleu_precook(s, n=4, out=False):
    words = s.split()
    counts = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            ngram = tuple(words[i:i + k])
            counts[ngram] += 1
    return (len(words), counts)


def bleu_cook_refs(refs, eff=None, n=4):
    reflen = []
    maxcounts = {}
    for ref in refs:
        rl, counts = bleu_precook(ref, n)
        reflen.append(rl)
        for (ngram, count) in counts.items():
            maxcounts[ngram] = max(maxcounts.get(ngram, 0), count)
    if eff == "shortest":
        reflen = min(reflen)
    elif eff == "average":
        reflen = float(sum(reflen)) / len(reflen)
    return (reflen, maxcounts)


def bleu_cook_test(test, refparam, eff=None, n=4):
    reflen, refmaxcounts = refparam
    testlen, counts = bleu_precook(test, n, True)
    result = {}
    if eff == "closest":
        result["reflen"] = min((abs(l - testlen), l) for l in reflen)[1]
    else:
        result["reflen"] = reflen
    result["testlen"] = testlen
    result["guess"] = [max(0, testlen - k + 1) for k in range(1, n + 1)]
    result['correct'] = [0] * n
    for (ngram, count) in counts.items():
        result["correct"][len(ngram) - 1] += min(refmaxcounts.get(ngram, 0), count)
    return result


class BleuScorer(object):
    def __init__(self, n=4):
        self.n = n
        self.crefs = []
        self.ctest = []
        self._score = None

    def add(self, test, refs):
        self.crefs.append(bleu_cook_refs(refs))
        self.ctest.append(bleu_cook_test(test, self.crefs[-1]))

    def _single_reflen(self, reflens, option=None, testlen=None):
        if option == "shortest":
            reflen = min(reflens)
        elif option == "average":
            reflen = float(sum(reflens)) / len(reflens)
        elif option == "closest":
            reflen = min((abs(l - testlen), l) for l in reflens)[1]
        else:
            assert False, "unsupported reflen option %s" % option
        return reflen

    def compute_score(self, option=None):
        n = self.n
        small = 1e-9
        tiny = 1e-15  # so that if guess is 0 still return 0
        if option is None:
            option = "average" if len(self.crefs) == 1 else "closest"
        self._testlen = 0
        self._reflen = 0
        totalcomps = {'testlen': 0, 'reflen': 0, 'guess': [0] * n, 'correct': [0] * n}
        for comps in self.ctest:
            testlen = comps['testlen']
            self._testlen += testlen
            reflen = self._single_reflen(comps['reflen'], option, testlen)
            self._reflen += reflen
            for key in ['guess', 'correct']:
                for k in range(n):
                    totalcomps[key][k] += comps[key][k]
        totalcomps['reflen'] = self._reflen
        totalcomps['testlen'] = self._testlen
        bleus = []
        for nn in range(1, n + 1):
            bleu = 1.
            for k in range(nn):
                bleu *= float(totalcomps['correct'][k] + tiny) \
                    / (totalcomps['guess'][k] + small)
            bleus.append(bleu ** (1. / nn))
            ratio = (self._testlen + tiny) / (self._reflen + small)  # avoid zero division
            if ratio < 1:
                bleus[nn - 1] *= math.exp(1 - 1 / ratio)
        self._score = bleus
        return bleus, totalcomps, ratio


def bleu_compute(gts, res):
    # bleu.py: Bleu(4).compute_score
    assert gts.keys() == res.keys()
    scorer = BleuScorer(n=4)
    for img in gts.keys():
        hypo, ref = res[img], gts[img]
        assert type(hypo) is list and len(hypo) == 1
        assert type(ref) is list and len(ref) >= 1
        scorer.add(hypo[0], ref)
    return scorer.compute_score(option='closest')


# ----------------------------------------------------------------- CIDEr-D
# cider_scorer.py (Tsung-Yi Lin, Ramakrishna Vedantam)

def cider_precook(s, n=4, out=False):
    words = s.split()
    counts = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            ngram = tuple(words[i:i + k])
            counts[ngram] += 1
    return counts


class CiderScorer(object):
    def __init__(self, n=4, sigma=6.0):
        self.n = n
        self.sigma = sigma
        self.crefs = []
        self.ctest = []
        self.document_frequency = defaultdict(float)
        self.ref_len = None

    def add(self, test, refs):
        self.crefs.append([cider_precook(ref, self.n) for ref in refs])
        self.ctest.append(cider_precook(test, self.n, True))

    def compute_doc_freq(self):
        for refs in self.crefs:
            for ngram in set([ngram for ref in refs for (ngram, count) in ref.items()]):
                self.document_frequency[ngram] += 1

    def compute_cider(self):
        def counts2vec(cnts):
            vec = [defaultdict(float) for _ in range(self.n)]
            length = 0
            norm = [0.0 for _ in range(self.n)]
            for (ngram, term_freq) in cnts.items():
                # give word count 1 if it doesn't appear in reference corpus
                df = math.log(max(1.0, self.document_frequency[ngram]))
                n = len(ngram) - 1
                vec[n][ngram] = float(term_freq) * (self.ref_len - df)
                norm[n] += pow(vec[n][ngram], 2)
                if n == 1:
                    length += term_freq
            norm = [math.sqrt(n) for n in norm]
            return vec, norm, length

        def sim(vec_hyp, vec_ref, norm_hyp, norm_ref, length_hyp, length_ref):
            delta = float(length_hyp - length_ref)
            val = [0.0 for _ in range(self.n)]
            for n in range(self.n):
                for (ngram, count) in vec_hyp[n].items():
                    # vrama91 : added clipping
                    val[n] += min(vec_hyp[n][ngram], vec_ref[n][ngram]) * vec_ref[n][ngram]
                if (norm_hyp[n] != 0) and (norm_ref[n] != 0):
                    val[n] /= (norm_hyp[n] * norm_ref[n])
                assert not math.isnan(val[n])
                # vrama91: added a length based gaussian penalty
                val[n] *= math.e ** (-(delta ** 2) / (2 * self.sigma ** 2))
            return val

        self.ref_len = math.log(float(len(self.crefs)))
        scores = []
        for test, refs in zip(self.ctest, self.crefs):
            vec, norm, length = counts2vec(test)
            score = [0.0 for _ in range(self.n)]
            for ref in refs:
                vec_ref, norm_ref, length_ref = counts2vec(ref)
                s = sim(vec, vec_ref, norm, norm_ref, length, length_ref)
                score = [a + b for a, b in zip(score, s)]
            # mean of n-gram scores, divided by the number of references, x 10
            score_avg = sum(score) / len(score)
            score_avg /= len(refs)
            score_avg *= 10.0
            scores.append(score_avg)
        return scores

    def compute_score(self):
        self.compute_doc_freq()
        assert len(self.ctest) >= max(self.document_frequency.values())
        score = self.compute_cider()
        return sum(score) / len(score), score


def cider_compute(gts, res):
    # cider.py: Cider(n=4, sigma=6.0).compute_score
    assert gts.keys() == res.keys()
    scorer = CiderScorer(n=4, sigma=6.0)
    for img in gts.keys():
        hypo, ref = res[img], gts[img]
        assert type(hypo) is list and len(hypo) == 1
        assert type(ref) is list and len(ref) > 0
        scorer.add(hypo[0], ref)
    return scorer.compute_score()


# ----------------------------------------------------------------- ROUGE-L
# rouge.py (Ramakrishna Vedantam)

def my_lcs(string, sub):
    if len(string) < len(sub):
        sub, string = string, sub
    lengths = [[0 for i in range(0, len(sub) + 1)] for j in range(0, len(string) + 1)]
    for j in range(1, len(sub) + 1):
        for i in range(1, len(string) + 1):
            if string[i - 1] == sub[j - 1]:
                lengths[i][j] = lengths[i - 1][j - 1] + 1
            else:
                lengths[i][j] = max(lengths[i - 1][j], lengths[i][j - 1])
    return lengths[len(string)][len(sub)]


def rouge_calc_score(candidate, refs, beta=1.2):
    assert len(candidate) == 1
    assert len(refs) > 0
    prec = []
    rec = []
    token_c = candidate[0].split(" ")
    for reference in refs:
        token_r = reference.split(" ")
        lcs = my_lcs(token_r, token_c)
        prec.append(lcs / float(len(token_c)))
        rec.append(lcs / float(len(token_r)))
    prec_max = max(prec)
    rec_max = max(rec)
    if prec_max != 0 and rec_max != 0:
        score = ((1 + beta ** 2) * prec_max * rec_max) / float(rec_max + beta ** 2 * prec_max)
    else:
        score = 0.0
    return score


def rouge_compute(gts, res):
    assert gts.keys() == res.keys()
    score = [rouge_calc_score(res[img], gts[img]) for img in gts.keys()]
    return sum(score) / len(score), score


# ----------------------------------------------------------------- main

def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    cands, refs = data["candidates"], data["references"]
    if set(cands) != set(refs):
        sys.stderr.write("candidates and references name different images\n")
        return 1
    ids = list(refs.keys())
    gts = {i: list(refs[i]) for i in ids}
    res = {i: [cands[i]] for i in ids}
    bleus, totals, ratio = bleu_compute(gts, res)
    cider, cider_per = cider_compute(gts, res)
    rouge, rouge_per = rouge_compute(gts, res)
    out = {
        "Bleu_1": bleus[0], "Bleu_2": bleus[1], "Bleu_3": bleus[2], "Bleu_4": bleus[3],
        "CIDEr": cider, "ROUGE_L": rouge,
        "bleu_testlen": totals["testlen"], "bleu_reflen": totals["reflen"], "bleu_ratio": ratio,
        "bleu_guess": totals["guess"], "bleu_correct": totals["correct"],
        "CIDEr_per_image": dict(zip(ids, cider_per)),
        "ROUGE_L_per_image": dict(zip(ids, rouge_per)),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
