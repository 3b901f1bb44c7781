#!/usr/bin/env python3
"""Lists the warning and error log messages of C sources and CMake/Python build scripts.

Usage: extract-messages.py ROOT PATH... : prints "format<TAB>relative/file" lines, sorted and unique.
Only the format strings are printed (facts); no code is copied. Not run by CI.
Python: raise/sys.exit/log calls, and print() calls that say WARNING, ERROR or failed; a module's string constant or
a small helper returning a string, named in the call, stands for its text; f-string fields are kept as written.
CMake: message(FATAL_ERROR|SEND_ERROR|WARNING|DEPRECATION|AUTHOR_WARNING); line continuations and "\n" read as spaces.
"""
import os
import re
import sys

C_CALL = re.compile(r'\b(BOOT_LOG_ERR|BOOT_LOG_WRN|LOG_ERR|LOG_WRN|MCUBOOT_LOG_ERR|MCUBOOT_LOG_WRN|LOG_INST_ERR|LOG_INST_WRN)\s*\(')
CMAKE_CALL = re.compile(r'message\s*\(\s*(FATAL_ERROR|SEND_ERROR|WARNING|DEPRECATION|AUTHOR_WARNING)\s+', re.I)
PY_CALL = re.compile(r'\b(raise\s+\w*(?:Error|Exception)|sys\.exit|log\.(?:die|err|wrn)|logging\.(?:error|warning)|print_err|fatal)\s*\(')
# print() calls count when their text says it is a warning or a failure (Partition Manager prints those).
PY_PRINT = re.compile(r'\bprint\s*\(')
PY_PRINT_WORDS = re.compile(r'\b(WARNING|ERROR|[Ff]ailed)\b')
# A Python string literal (any prefix, triple-quoted first) or a name; names are looked up among the module's string
# constants (ALIGNMENT_ERROR = """...""") and its small helpers that return a string (def empty_one_of(...): return "...").
PY_TOKEN = re.compile(r'''(?:\b[fFrRbBuU]{1,2})?("""(?:[^\\]|\\.)*?"""|\'\'\'(?:[^\\]|\\.)*?\'\'\'|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|\b([A-Za-z_]\w*)\b(\s*\()?''', re.S)
PY_CONST = re.compile(r'''^([A-Z_][A-Z0-9_]*)\s*=\s*((?:[fr]?(?:"""(?:[^\\]|\\.)*?"""|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')\s*(?:\\\n\s*)?)+)''', re.M | re.S)
PY_HELPER = re.compile(r'''\bdef\s+(\w+)\s*\([^)]*\)\s*:\s*\n\s*return\s+((?:[^\n]*\\\n)*[^\n]*)''')
PRI = re.compile(r'PRI([diouxX])(8|16|32|64|PTR|MAX)')
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"|\b(PRI[diouxX](?:8|16|32|64|PTR|MAX))\b')


def c_args(text, start):
    """Returns the text of a call's arguments starting after its '(' (balanced, strings skipped)."""
    depth, i, out = 1, start, []
    while i < len(text) and depth > 0 and i - start < 4000:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1]); i = j + 1; continue
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
            if depth == 0:
                break
        out.append(ch); i += 1
    return ''.join(out)


def split_top_level(args):
    """Splits call arguments on the commas outside string literals and parentheses."""
    pieces, depth, i, start = [], 0, 0, 0
    while i < len(args):
        ch = args[i]
        if ch == '"':
            i += 1
            while i < len(args) and args[i] != '"':
                i += 2 if args[i] == '\\' else 1
        elif ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        elif ch == ',' and depth == 0:
            pieces.append(args[start:i])
            start = i + 1
        i += 1
    pieces.append(args[start:])
    return pieces


def first_format(args):
    """Joins the adjacent string literals (and PRI macros) of the first argument that has any."""
    parts, seen = [], False
    for piece in split_top_level(args):
        lits = LITERAL.findall(piece)
        if lits:
            for s, pri in lits:
                parts.append(pri[3] if pri else s)
            seen = True
            break
    if not seen:
        return None
    fmt = ''.join(parts).replace('\\n', '').replace('\\r', '').replace('\\"', '"').replace('\\t', ' ').strip()
    return fmt or None


def scan_c(path, rel, out):
    text = open(path, encoding='utf-8', errors='replace').read()
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    for m in C_CALL.finditer(text):
        fmt = first_format(c_args(text, m.end()))
        if fmt:
            out.add((fmt, rel))


def scan_cmake(path, rel, out):
    text = open(path, encoding='utf-8', errors='replace').read()
    for m in CMAKE_CALL.finditer(text):
        args = c_args(text, m.end())
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', args, flags=re.S)
        # A backslash before a newline continues the line; "\n" is a newline: both read as a space.
        lits = [re.sub(r'\\\n', ' ', l).replace('\\n', ' ') for l in lits]
        fmt = ' '.join(' '.join(l.split()) for l in lits).strip()
        if fmt:
            out.add((fmt, rel))


def py_text(literal):
    """The text of one Python string literal, its escapes read and its whitespace collapsed."""
    body = literal[3:-3] if literal[:3] in ('"""', "'''") else literal[1:-1]
    body = body.replace('\\n', ' ').replace('\\t', ' ').replace("\\'", "'").replace('\\"', '"')
    return body


def py_literals(args, names):
    """Joins the string literals of call arguments in order, a known constant's or helper's text in place of its name."""
    parts, pos = [], 0
    while True:
        m = PY_TOKEN.search(args, pos)
        if not m:
            break
        pos = m.end()
        literal, name, call = m.group(1), m.group(2), m.group(3)
        if literal:
            parts.append(py_text(literal))
        elif name in names and (call is None) == (names[name][0] == 'const'):
            parts.append(names[name][1])
            if call:
                pos += len(c_args(args, pos)) + 1  # a helper's own arguments are not part of the message
    return ' '.join(''.join(parts).split())


def scan_py(path, rel, out):
    text = open(path, encoding='utf-8', errors='replace').read()
    names = {}
    for m in PY_CONST.finditer(text):
        names[m.group(1)] = ('const', py_literals(m.group(2), {}))
    for m in PY_HELPER.finditer(text):
        names[m.group(1)] = ('helper', py_literals(m.group(2), {}))
    for m in PY_CALL.finditer(text):
        fmt = py_literals(c_args(text, m.end()), names).strip()
        if len(fmt) > 8:
            out.add((fmt, rel))
    for m in PY_PRINT.finditer(text):
        fmt = py_literals(c_args(text, m.end()), names).strip()
        if len(fmt) > 8 and PY_PRINT_WORDS.search(fmt):
            out.add((fmt, rel))


def main():
    if len(sys.argv) < 3:
        sys.exit('usage: extract-messages.py ROOT PATH...')
    root = sys.argv[1]
    out = set()
    for sub in sys.argv[2:]:
        base = os.path.join(root, sub)
        walk = [(os.path.dirname(base), [], [os.path.basename(base)])] if os.path.isfile(base) else os.walk(base)
        for d, _, files in walk:
            if '/tests' in d or '/test/' in d or '/samples' in d:
                continue
            for f in files:
                p = os.path.join(d, f)
                rel = os.path.relpath(p, root)
                if f.endswith(('.c', '.h')):
                    scan_c(p, rel, out)
                elif f.endswith('.cmake') or f == 'CMakeLists.txt':
                    scan_cmake(p, rel, out)
                elif f.endswith('.py'):
                    scan_py(p, rel, out)
    for fmt, rel in sorted(out, key=lambda x: (x[1], x[0])):
        print(f'{fmt}\t{rel}')


if __name__ == '__main__':
    main()
