#!/usr/bin/env python3
"""Finishes the man pages that swift-argument-parser generated (called by generate-man.sh).

For each man/smpctl*.1 it
  - replaces the generic EXIT STATUS section with the command's own, and adds an EXAMPLES
    section, both from man/extra/<page>.txt (the page's name without .1), which every page needs;
  - reflows the text so that `mandoc -T lint` is clean: one sentence per line, lines of at most
    80 bytes, .Pp instead of blank lines, no .Pp right before .It, no trailing period in .Nd.

man/extra/<page>.txt holds lines of three kinds (blank lines and lines starting with # are skipped):
  exit N TEXT        an exit status of the command and when it happens
  example TEXT       the start of an example: what it does
  $ COMMAND          a command line of the example before it (several may follow one another)
  | OUTPUT           a line of output of the example (optional)

Usage: scripts/finish-man.py [MAN-DIR]   (default: man)
"""
import pathlib
import re
import sys

WIDTH = 80
SENTENCE_END = re.compile(r"""([.!?][)\]"']*) +(?=\S)""")


def escape_text(text):
    text = text.replace("\\", "\\e")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def wrap(line):
    """One sentence per line, each line at most WIDTH bytes (a longer word stays whole)."""
    out = []
    for sentence in SENTENCE_END.sub(lambda m: m.group(1) + "\n", line).split("\n"):
        current = ""
        for word in sentence.split():
            candidate = word if not current else current + " " + word
            if len(candidate.encode()) <= WIDTH or not current:
                current = candidate
            else:
                out.append(current)
                current = word
        if current:
            out.append(current)
    return [("\\&" + l) if l.startswith((".", "'")) else l for l in out]


def read_extra(path):
    statuses, examples = [], []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("exit "):
            parts = line.split(" ", 2)
            if len(parts) < 3 or not parts[1].isdigit():
                sys.exit(f"{path}:{number}: expected 'exit N TEXT'")
            statuses.append((parts[1], parts[2]))
        elif line.startswith("example "):
            examples.append((line[len("example "):], []))
        elif line.startswith("$ ") or line.startswith("| "):
            if not examples:
                sys.exit(f"{path}:{number}: a command line before any 'example'")
            examples[-1][1].append(line if line.startswith("$ ") else line[2:])
        else:
            sys.exit(f"{path}:{number}: unknown line: {line}")
    if not statuses:
        sys.exit(f"{path}: no 'exit' line")
    if not examples or any(not commands for _, commands in examples):
        sys.exit(f"{path}: every page needs an example with a command line")
    return statuses, examples


def sections(statuses, examples):
    out = ['.Sh "EXIT STATUS"', ".Bl -tag -width 4n"]
    for number, text in statuses:
        out += [f".It {number}"] + wrap(escape_text(text))
    out += [".El", ".Sh EXAMPLES"]
    for index, (title, lines) in enumerate(examples):
        if index > 0:
            out.append(".Pp")
        out += wrap(escape_text(title))
        out += [".Bd -literal -offset indent"] + [escape_text(l) for l in lines] + [".Ed"]
    return out


def finish(page, extra):
    lines = page.read_text(encoding="utf-8").splitlines()
    statuses, examples = read_extra(extra)
    # Drop an earlier EXIT STATUS/EXAMPLES (generated or added by a previous run) up to AUTHORS.
    try:
        start = next(i for i, l in enumerate(lines) if l.strip('"').startswith(('.Sh "EXIT STATUS', ".Sh EXIT STATUS")))
    except StopIteration:
        start = next(i for i, l in enumerate(lines) if l.startswith(".Sh AUTHORS"))
    end = next(i for i, l in enumerate(lines) if l.startswith(".Sh AUTHORS"))
    body, tail = lines[:start], lines[end:]
    out = []
    for index, line in enumerate(body):
        following = body[index + 1] if index + 1 < len(body) else ""
        if line.startswith(".Nd "):
            line = re.sub(r'\.(")?$', r"\1", line)
        if line == "":
            # A paragraph break, unless a macro that starts a block comes next.
            if following.startswith((".Bl", ".Sh", ".It", ".El", ".Pp")) or not out or out[-1].startswith((".Sh", ".Pp")):
                continue
            out.append(".Pp")
        elif line == ".Pp" and following.startswith(".It"):
            continue
        elif line.startswith(".") or line.startswith("'"):
            out.append(line)
        else:
            # A bare "--" (end of options) is written as two hyphens, not an em dash.
            out += wrap(re.sub(r"(?<![\\\w-])--(?![\w-])", r"\\-\\-", line))
    page.write_text("\n".join(out + sections(statuses, examples) + tail) + "\n", encoding="utf-8")


def main():
    directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "man")
    missing = []
    for page in sorted(directory.glob("smpctl*.1")):
        extra = directory / "extra" / (page.name[: -len(".1")] + ".txt")
        if not extra.exists():
            missing.append(str(extra))
            continue
        finish(page, extra)
    if missing:
        sys.exit("no EXIT STATUS and EXAMPLES source for:\n  " + "\n  ".join(missing))


if __name__ == "__main__":
    main()
