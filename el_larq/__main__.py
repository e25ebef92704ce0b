"""`python -m el_larq COMMAND ...`: the same as the `el-larq` command."""

from el_larq.cli.main import main

if __name__ == "__main__":
    main()
