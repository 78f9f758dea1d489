s/^(twinq repl: demo fleet, 50,000 device twins), [0-9,]+ module twins/\1, N module twins/
/^devices\.modules:/,+2 s/[0-9][0-9,]*/N/g
