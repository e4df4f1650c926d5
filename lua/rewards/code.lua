-- code: 1 when the extracted program with the row's tests appended runs to its end in
-- the code sandbox, else 0 (see rlvr.code; partial credit: require("rlvr.code").script{partial = true}).
return require("rlvr.code").script()
