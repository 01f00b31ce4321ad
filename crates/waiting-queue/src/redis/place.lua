-- Place: where ARGV[9] stands, or {0}. Asking is a sign of life.
return place(ARGV[9], open()) or {0}
