"""Reports: pictures of one run and comparisons of many (seqlab-compare)."""
