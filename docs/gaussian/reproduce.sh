#!/usr/bin/env bash
# Reproduce Mohamed et al. (2020), Figures 2-3: variance of one gradient estimate against k, for dmu and dsigma,
# at mu = sigma = 1 and the paper's k ranges (its notebook: square k in [-3, 3] linear, exp k in [0.1, 10] log,
# cos k in [0.5, 5] log; 25 points here instead of 100). Run from the repository root; about 1-3 min per cost.
set -euo pipefail
out=docs/gaussian
for spec in "gauss-square -3:3:25" "gauss-exp 0.1:10:25:log" "gauss-cos 0.5:5:25:log"; do
  set -- $spec
  gradbench sweep --tasks "$1" --estimators score-function,pathwise,measure-valued --vary "k=$2" \
    --est-opt baseline=none,optimal --task-opt wrt=mu,sigma --seeds 2 --samples 100000 --workers 1 \
    --out "$out/$1.csv" --overwrite
  gradbench plot "$out/$1.csv" --metrics variance,bias --out "$out/$1"
done
