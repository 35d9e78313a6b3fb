#!/usr/bin/env bash
# chi2_two_sample.sh A B — are the lines of files A and B (one category per
# line) drawn from one distribution? Two-sample chi-square over the
# categories seen at least 10 times in both together (the rest pooled),
# turned into a z score by the Wilson-Hilferty approximation; prints
# "same" when z < 4.75 (a 1e-6 tail), else "differ", with the figures.
awk 'FNR == NR { a[$0]++; na++; next } { b[$0]++; nb++ }
END {
  for (k in a) t[k] = 1
  for (k in b) t[k] = 1
  for (k in t) { n = a[k] + b[k]; if (n >= 10) { ca[k] = a[k]; cb[k] = b[k] } else { ra += a[k]; rb += b[k] } }
  if (ra + rb > 0) { ca["rest"] = ra; cb["rest"] = rb }
  chi = 0; df = -1
  for (k in ca) {
    n = ca[k] + cb[k]; ea = n * na / (na + nb); eb = n * nb / (na + nb)
    chi += (ca[k] - ea) ^ 2 / ea + (cb[k] - eb) ^ 2 / eb; df++
  }
  if (df < 1) { print "differ: fewer than 2 categories"; exit }
  z = ((chi / df) ^ (1 / 3) - (1 - 2 / (9 * df))) / sqrt(2 / (9 * df))
  printf "%s (chi2 %.1f, %d degrees of freedom, z %.2f)\n", z < 4.75 ? "same" : "differ", chi, df, z
}' "$1" "$2"
