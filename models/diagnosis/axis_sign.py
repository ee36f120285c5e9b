"""For model clauses with both NPs correct: does the stated direction agree with the sign of the
centre offset along the stated axis (y-order for above/below, x-order for left/right)?"""
import json, sys, collections
from common import RELNAMES
for f in sys.argv[1:]:
    rows = json.load(open(f))
    c = collections.Counter()
    for x in rows:
        ax = "horizontal" if x["rel"] < 2 else "vertical"
        c[ax] += 1; c[ax + " sign ok"] += str(x["sign_ok"]) == "True"; c[ax + " correct"] += str(x["correct"]) == "True"
    print(f"{f}: " + "; ".join(f"{ax} stated {c[ax]}, sign agrees {c[ax+' sign ok']} ({c[ax+' sign ok']/c[ax]:.3f}), relation holds {c[ax+' correct']} ({c[ax+' correct']/c[ax]:.3f})" for ax in ("horizontal", "vertical")))
