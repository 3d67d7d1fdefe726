#!/usr/bin/env python3
# dec_oracle.py - checks the expression language's exact decimals against
# Python's decimal module: random operands of 1 to 38 digits, the five
# operators, comparisons, round(), decimal(x, scale), floor/ceiling and
# int(), with the rules of docs/expressions.md (results fit 38 digits and
# scale <= 38 by rounding fractional digits half away from zero; a quotient
# gets scale max(6, scale(a), scale(b)); integer part too large: overflow).
#   dec_oracle.py EVAL_LINES_BINARY [SEED] [COUNT]
import random
import subprocess
import sys
from decimal import Decimal, getcontext, ROUND_HALF_UP, ROUND_DOWN, ROUND_FLOOR, ROUND_CEILING

getcontext().prec = 400
tool = sys.argv[1]
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
count = int(sys.argv[3]) if len(sys.argv) > 3 else 20000


def operand():
    nd = random.choice([1, 1, 2, 3, 5, 10, 18, 19, 20, 30, 37, 38])
    sc = random.randint(0, nd)
    r = random.random()
    digits = '9' * nd if r < 0.2 else '1' + '0' * (nd - 1) if r < 0.3 else \
        ''.join(random.choice('0123456789') for _ in range(nd))
    s = digits[:nd - sc] or '0'
    if sc:
        s += '.' + digits[nd - sc:]
    return ('-' if random.random() < 0.5 else '') + s


def scale_of(s):
    return len(s.split('.')[1]) if '.' in s else 0


def text(d):
    s = format(d, 'f')
    return s[1:] if s.startswith('-') and d == 0 else s


def fit(x, scale):
    """x at `scale` places, fewer while it needs more than 38 digits."""
    for s in range(min(scale, 38), -1, -1):
        r = x.quantize(Decimal(1).scaleb(-s), rounding=ROUND_HALF_UP)
        if len(str(abs(int(r.scaleb(s))))) <= 38:
            return text(r)
    return None


def case():
    a, b = operand(), operand()
    A, B, sa, sb = Decimal(a), Decimal(b), scale_of(a), scale_of(b)
    da, db = "decimal('%s')" % a, "decimal('%s')" % b
    kind = random.choice('+-*/%<=rdfci')
    if kind in '+-*/%':
        src = '%s %s %s' % (da, kind, db)
        if kind in '/%' and B == 0:
            return src, 'ERR division by zero'
        if kind == '+':
            x, s = A + B, max(sa, sb)
        elif kind == '-':
            x, s = A - B, max(sa, sb)
        elif kind == '*':
            x, s = A * B, sa + sb
        elif kind == '/':
            x, s = A / B, max(6, sa, sb)
        else:
            x, s = A - B * (A / B).to_integral_value(rounding=ROUND_DOWN), max(sa, sb)
        r = fit(x, s)
        return src, r if r is not None else \
            "ERR decimal overflow in '%s' (more than 38 digits)" % kind
    if kind == '<':
        return '%s < %s' % (da, db), 'true' if A < B else 'false'
    if kind == '=':
        b2 = (b + '000') if '.' in b else (b + '.000')  # same value, other scale
        return '%s = decimal(\'%s\')' % (db, b2), 'true'
    if kind == 'r':
        n = random.randint(-40, 40)
        src = 'round(%s, %d)' % (da, n)
        if n >= sa:
            return src, text(A)
        q = A.quantize(Decimal(1).scaleb(-n), rounding=ROUND_HALF_UP)
        r = fit(q, max(n, 0))
        return src, r if r is not None else 'ERR decimal overflow in round()'
    if kind == 'd':
        n = random.randint(0, 38)
        src = 'decimal(%s, %d)' % (da, n)
        q = A.quantize(Decimal(1).scaleb(-n), rounding=ROUND_HALF_UP)
        if len(str(abs(int(q.scaleb(n))))) > 38:
            return src, "ERR cannot convert decimal %s to decimal: more than 38 digits" % text(A)
        return src, text(q)
    if kind in 'fc':
        f = 'floor' if kind == 'f' else 'ceiling'
        return '%s(%s)' % (f, da), text(A.to_integral_value(
            rounding=ROUND_FLOOR if kind == 'f' else ROUND_CEILING))
    t = A.to_integral_value(rounding=ROUND_DOWN)
    if -2**63 <= t < 2**63:
        return 'int(%s)' % da, str(int(t))
    return 'int(%s)' % da, None  # out of range: an error, message checked loosely


cases = [case() for _ in range(count)]
out = subprocess.run([tool], input=''.join(c[0] + '\n' for c in cases),
                     capture_output=True, text=True, check=True).stdout.splitlines()
bad = 0
for (src, want), got in zip(cases, out):
    ok = got.startswith('ERR ') and 'out of range' in got if want is None else got == want
    if not ok:
        bad += 1
        if bad <= 20:
            print('MISMATCH %s\n  want %s\n  got  %s' % (src, want, got))
if len(out) != len(cases):
    print('tool printed %d lines for %d cases' % (len(out), len(cases)))
    bad += 1
print('dec_oracle: %d cases, %d mismatches' % (len(cases), bad))
sys.exit(1 if bad else 0)
