"""Firebase's Realtime Database security rules: the language and its semantics, pure (no Flask,
no Redis, no HTTP): docs/rules.md.

- model.py: what the parts share: RulesError, Kind, QueryInfo, the Snapshot protocol, Env.
- dialect.py: Firebase's dialect of JSON (comments, multi-line strings) to a Python value.
- lexer.py, syntax.py, parser.py: an expression's tokens and tree (a Pratt parser).
- checker.py: the static type check run at upload; evaluator.py: an expression run per request
  (compile_expression is the door); regex.py: `matches(/re/)` on RE2 (linear time, size cap).
- snapshots.py: data, newData and root over a Tree (what a store reads), and the tree a write
  would make.
- ruleset.py: a rules document compiled (compile_rules is the door); judge.py: may this read or
  these writes happen (can_read, can_write); cases.py: the yardstick's cases run offline.
"""
