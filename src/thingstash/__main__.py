"""`python -m thingstash` is the `thingstash` command."""

from thingstash.cli.main import main

# The guard matters: granian starts its workers with multiprocessing's spawn, which imports
# this module again in each worker (as __mp_main__), where it must not start another server.
if __name__ == "__main__":
    main()
