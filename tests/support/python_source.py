"""Python source read by the tests that check the package's own code."""

import ast


def parsed(source: str) -> ast.Module:
    """`ast.parse`, once more if CPython 3.11 reports its AST recursion counter out of step: the
    counter is shared by every thread, and a thread formatting a traceback (3.11 parses the
    failing line to place its carets) while this one parses can throw it off."""
    try:
        return ast.parse(source)
    except SystemError:
        return ast.parse(source)
