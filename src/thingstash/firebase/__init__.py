"""The Firebase Realtime Database face's own logic (docs/firebase.md): one JSON tree seen over
thingstash's folders and things, by verb.

- the vocabulary: mapping.py (locations, values, members, ETags), errors.py (what can go wrong,
  by kind; web/firebase/errors.py answers each with its status);
- reads: reading.py (values, shallow), query.py and querying.py (queries), streaming.py and
  streamreads.py (what streams show and read);
- writes: tree.py (set, push, update), layout.py and placement.py (where a value's things
  lie);
- rules: rules.py (the rules document).

Pure modules (mapping, errors, query, layout, streaming) use stdlib, orjson and the core only;
the others reach the store through core.store.Store methods only. The HTTP face is web/firebase/.
"""
