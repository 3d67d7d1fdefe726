/*
 * expr_test.c - the expression language (expr.h) against a table of
 * expressions, each with the canonical result it must give ("type:text")
 * or the exact error ("error:..." at evaluation, "compile:..." with line and
 * column), plus the API around it: field references, the fields and
 * lookups an expression uses, lookup() through the context, evaluation
 * without a scope, concurrent evaluation, and no allocation per record.
 * Cases marked "fuzz:" came from the fuzzer (tests/fuzz/expr_fuzz.c).
 */
#include <malloc.h>
#include <pthread.h>

#include "expr_case.h"

#define PARTS                                                                                \
	"year, quarter, month, dayofyear, day, week, weekday, hour, minute, second, "        \
	"millisecond, microsecond"
#define OVF(op) "error:integer overflow in '" op "' (use decimal() for numbers beyond 64 bits)"

static const struct expr_case cases[] = {
	/* literals and arithmetic */
	{"1", "int:1"},
	{"-1", "int:-1"},
	{"+1", "int:1"},
	{"- -1", "int:1"},
	{"1 + 2 * 3", "int:7"},
	{"(1 + 2) * 3", "int:9"},
	{"1 - 2 - 3", "int:-4"},
	{"1 - 2 + 3", "int:2"},
	{"2 * 3 % 4", "int:2"},
	{"7 / 2", "int:3"},
	{"-7 / 2", "int:-3"},
	{"7 % 3", "int:1"},
	{"-7 % 3", "int:-1"},
	{"7 / 0", "error:division by zero"},
	{"7 % 0", "error:division by zero"},
	{"age / zero", "error:division by zero"},
	{"7.0 / 0", "error:division by zero"},
	{"7.5 % 0.0", "error:division by zero"},
	{"1e0 / 0", "error:division by zero"},
	{"rate % 0", "error:division by zero"},
	{"9223372036854775807 + 1", OVF("+")},
	{"big + 1", OVF("+")},
	{"big * 2", OVF("*")},
	{"-big - 2", OVF("-")},
	{"-9223372036854775808", "int:-9223372036854775808"},
	{"-9223372036854775808 - 1", OVF("-")},
	{"-9223372036854775808 / -1", OVF("/")},
	{"-9223372036854775808 % -1", "int:0"},
	{"-(-9223372036854775808)", "error:integer overflow in '-'"},
	{"9223372036854775808", "decimal:9223372036854775808"},
	{"decimal(big) + 1", "decimal:9223372036854775808"},
	{"big + 1.0", "decimal:9223372036854775808.0"},
	{"1.5 + 1.25", "decimal:2.75"},
	{"1.50 + 1", "decimal:2.50"},
	{"0.1 + 0.2", "decimal:0.3"},
	{"1.5 * 2.0", "decimal:3.00"},
	{"price * qty", "decimal:59.97"},
	{"price * 3 - 0.97", "decimal:59.00"},
	{"-price", "decimal:-19.99"},
	{"price - price", "decimal:0.00"},
	{"dec_neg * 2", "decimal:-1.00"},
	{"1 / 3.0", "decimal:0.333333"},
	{"2 / 3.0", "decimal:0.666667"},
	{"-2 / 3.0", "decimal:-0.666667"},
	{"10.00 / 4", "decimal:2.500000"},
	{"1.00000000 / 3", "decimal:0.33333333"},
	{"1.5 / 0.000000000000000000000000000001", "decimal:1500000000000000000000000000000.0000000"},
	{"1 / 0.00000000000000000000000000000000000001", "error:decimal overflow in '/' (more than 38 digits)"},
	{"12345678901234567890123456789012345678 / 0.00000000000000000000000000000000000001",
	 "error:decimal overflow in '/' (more than 38 digits)"},
	{"0.00000000000000000000000000000000000001 / 12345678901234567890123456789012345678",
	 "decimal:0.00000000000000000000000000000000000000"},
	{"99999999999999999999999999999999999999 / 0.5", "error:decimal overflow in '/' (more than 38 digits)"},
	{"99999999999999999999999999999999999999 / 2", "decimal:50000000000000000000000000000000000000"},
	{"99999999999999999999999999999999999999 * 0.1", "decimal:9999999999999999999999999999999999999.9"},
	{"99999999999999999999999999999999999999 * 99999999999999999999999999999999999999",
	 "error:decimal overflow in '*' (more than 38 digits)"},
	{"0.99999999999999999999999999999999999999 * 0.99999999999999999999999999999999999999",
	 "decimal:0.99999999999999999999999999999999999998"},
	{"0.5 * 0.00000000000000000000000000000000000001", "decimal:0.00000000000000000000000000000000000001"},
	{"0.4 * 0.00000000000000000000000000000000000001", "decimal:0.00000000000000000000000000000000000000"},
	{"0.00000000000000000000000000000000000001 + 1", "decimal:1.0000000000000000000000000000000000000"},
	{"99999999999999999999999999999999999999 - 0.5", "decimal:99999999999999999999999999999999999999"},
	{"99999999999999999999999999999999999998 + 0.5", "decimal:99999999999999999999999999999999999999"},
	{"12345678901234567890.123456789012345678 % 0.0000001", "decimal:0.000000089012345678"},
	{"price / 0.0", "error:division by zero"},
	{"5.5 % 2", "decimal:1.5"},
	{"-5.5 % 2", "decimal:-1.5"},
	{"5.5 % -2", "decimal:1.5"},
	{"10 % 3.5", "decimal:3.0"},
	{"99999999999999999999999999999999999999", "decimal:99999999999999999999999999999999999999"},
	{"99999999999999999999999999999999999999 + 1",
	 "error:decimal overflow in '+' (more than 38 digits)"},
	{"999999999999999999999999999999999999999", "compile:line 1, column 1: number 999999999999999999999999999999999999999 has more than 38 digits"},
	{"0.123456789012345678901234567890123456789", "compile:line 1, column 1: number 0.123456789012345678901234567890123456789 has more than 38 digits"},
	{"0.12345678901234567890123456789012345678", "decimal:0.12345678901234567890123456789012345678"},
	{"dec_big * 1", "decimal:12345678901234567890.123456789012345678"},
	{"dec_big * 10", "decimal:123456789012345678901.23456789012345678"},
	{"dec_big + dec_big", "decimal:24691357802469135780.246913578024691356"},
	{"dec_big - dec_big", "decimal:0.000000000000000000"},
	{"dec_big * dec_big", "error:decimal overflow in '*' (more than 38 digits)"},
	{"dec_big * 0.0000000001", "decimal:1234567890.1234567890123456789012345678"},
	{"dec_big / 3", "decimal:4115226300411522630.041152263004115226"},
	{"dec_big > 12345678901234567890.12345678901234567", "bool:true"},
	{"dec_big < 12345678901234567890.12345678901234568", "bool:true"},
	{"1.05 * 1.05", "decimal:1.1025"},
	{"0.5 * 0.5 * 0.5", "decimal:0.125"},
	{"rate * 2", "float:5"},
	{"rate + 1", "float:3.5"},
	{"rate + 0.5", "float:3"},
	{"rate / 2", "float:1.25"},
	{"rate % 2", "float:0.5"},
	{"-rate", "float:-2.5"},
	{"ratio + ratio + ratio", "float:0.30000000000000004"},
	{"1e3", "float:1000"},
	{"1.5e-3", "float:0.0015"},
	{"2E+2", "float:200"},
	{".5", "decimal:0.5"},
	{"5.", "decimal:5"},
	{"1e400", "compile:line 1, column 1: number 1e400 is out of range"},
	{"1e308 * 10", "error:float overflow in '*'"},
	{"0.1e1 + 1", "float:2"},
	{"'a' - 1", "error:cannot apply '-' to text 'a' and integer 1 (convert text with int(), decimal() or float())"},
	{"first_name * 2", "error:cannot apply '*' to text 'Ada' (field 'first_name') and integer 2 (convert text with int(), decimal() or float())"},
	{"born + 1", "error:cannot apply '+' to date '1815-12-10' (field 'born') and integer 1 (use dateadd() and datediff() for dates)"},
	{"active + 1", "error:cannot apply '+' to boolean true (field 'active') and integer 1"},
	{"-first_name", "error:cannot apply '-' to text 'Ada' (field 'first_name')"},
	{"1 + 2 + born", "error:cannot apply '+' to integer 3 and date '1815-12-10' (field 'born') (use dateadd() and datediff() for dates)"},
	{"nul - 1", "null"},
	{"1 * nul", "null"},
	{"-nul", "null"},
	{"nul / 0", "null"},

	/* strings and + */
	{"first_name + ' ' + last_name", "text:Ada Lovelace"},
	{"'It''s'", "text:It's"},
	{"''", "text:"},
	{"''''", "text:'"},
	{"'multi\nline'", "text:multi\nline"},
	{"'a' + 1", "text:a1"},
	{"1 + 'a'", "text:1a"},
	{"1 + 2 + 'a'", "text:3a"},
	{"'a' + 1 + 2", "text:a12"},
	{"'a' + (1 + 2)", "text:a3"},
	{"'x' + price", "text:x19.99"},
	{"'x' + rate", "text:x2.5"},
	{"'x' + active", "text:xtrue"},
	{"'x' + born", "text:x1815-12-10"},
	{"'x' + created", "text:x2024-03-05 14:30:15.25"},
	{"'x' + updated", "text:x2024-03-05 14:30:15+00:00"},
	{"'x' + big", "text:x9223372036854775807"},
	{"'x' + neg", "text:x-7"},
	{"'x' + doc", "text:x{\"a\":1}"},
	{"'x' + blob", "error:field 'blob': cannot convert bytes (2 bytes) to text: not valid UTF-8"},
	{"'x' + 1e20", "text:x1e+20"},
	{"'x' + 0.000001", "text:x0.000001"},
	{"first_name + nul", "null"},
	{"nul + first_name", "null"},
	{"first_name + ' ' + nul + 'x'", "null"},
	{"nul + 1 + 'x'", "null"},
	{"first_name + first_name + first_name + first_name + first_name + first_name + first_name + first_name + first_name + first_name",
	 "text:AdaAdaAdaAdaAdaAdaAdaAdaAdaAda"},
	{"\"Full Name\"", "text:Ada King"},
	{"\"full name\"", "text:Ada King"},
	{"FIRST_NAME", "text:Ada"},
	{"(first_name)", "text:Ada"},
	{"doc", "json:{\"a\":1}"},
	{"blob", "bytes:\\xff00"},
	{"nul", "null"},
	{"big", "int:9223372036854775807"},
	{"price", "decimal:19.99"},
	{"born", "date:1815-12-10"},
	{"created", "timestamp:2024-03-05 14:30:15.25"},
	{"updated", "timestamptz:2024-03-05 14:30:15+00:00"},

	/* null handling */
	{"coalesce(nul, 'n/a')", "text:n/a"},
	{"coalesce(nul, nul, 3)", "int:3"},
	{"coalesce(nul)", "null"},
	{"coalesce(1, 1 / 0)", "int:1"},
	{"coalesce(nul, 1 / 0)", "error:division by zero"},
	{"isnull(nul, 'n/a')", "text:n/a"},
	{"isnull(first_name, 'n/a')", "text:Ada"},
	{"isnull(nul)", "bool:true"},
	{"isnull(first_name)", "bool:false"},
	{"isnull(nul + 1, 0) + 1", "int:1"},
	{"null", "null"},
	{"NULL", "null"},
	{"upper(nul)", "null"},
	{"substring(first_name, nul, 1)", "null"},
	{"string(nul)", "null"},
	{"len(nul)", "null"},

	/* string functions */
	{"upper(first_name)", "text:ADA"},
	{"lower(first_name)", "text:ada"},
	{"lower('\xc3\x84\xc3\x96\xc3\x9c Stra\xc3\x9f" "e')", "text:\xc3\xa4\xc3\xb6\xc3\xbc stra\xc3\x9f" "e"},
	{"upper('\xc3\xa4\xc3\xb6\xc3\xbc \xc3\xa9t\xc3\xa9')", "text:\xc3\x84\xc3\x96\xc3\x9c \xc3\x89T\xc3\x89"},
	{"upper(emoji)", "text:A\xf0\x9f\x98\x80" "B"},
	{"upper(12.5)", "text:12.5"},
	{"len(utf)", "int:11"},
	{"len('')", "int:0"},
	{"len(12345)", "int:5"},
	{"len(emoji)", "int:3"},
	{"len(spaces)", "int:7"},
	{"len(price)", "int:5"},
	{"substring('abcdef', 2, 3)", "text:bcd"},
	{"substring('abcdef', 0, 3)", "text:ab"},
	{"substring('abcdef', -1, 3)", "text:a"},
	{"substring('abcdef', 5, 10)", "text:ef"},
	{"substring('abcdef', 7, 1)", "text:"},
	{"substring('abcdef', 3)", "text:cdef"},
	{"substring('abcdef', 2, 0)", "text:"},
	{"substring(utf, 3, 2)", "text:\xc3\xbc\xc3\x9f"},
	{"substring(emoji, 2, 1)", "text:\xf0\x9f\x98\x80"},
	{"substring('abc', 1, -1)", "error:substring(): the length must not be negative, got -1"},
	{"substring('abc', 1.5, 1)", "error:substring(): argument 2 must be a whole number, not decimal 1.5"},
	{"substring('abc', first_name, 1)", "error:substring(): argument 2 must be a whole number, not text 'Ada' (field 'first_name')"},
	{"substring('abc', 2.0, 1)", "text:b"},
	{"substring('abc', 9223372036854775807, 9223372036854775807)", "text:"},
	{"substring('abc', -9223372036854775807, 9223372036854775807)", "text:"},
	{"left('abcdef', 2)", "text:ab"},
	{"left('ab', 5)", "text:ab"},
	{"right('abcdef', 2)", "text:ef"},
	{"right('ab', 5)", "text:ab"},
	{"right(utf, 4)", "text:Welt"},
	{"left(utf, 4)", "text:Gr\xc3\xbc\xc3\x9f"},
	{"left('abc', -1)", "error:left(): the length must not be negative, got -1"},
	{"right('abc', -1)", "error:right(): the length must not be negative, got -1"},
	{"right(code, 3)", "text:123"},
	{"left(12345, 2)", "text:12"},
	{"left('abc', 0)", "text:"},
	{"trim(spaces)", "text:pad"},
	{"ltrim(spaces)", "text:pad  "},
	{"rtrim(spaces)", "text:  pad"},
	{"trim('\t x \n')", "text:x"},
	{"trim('   ')", "text:"},
	{"replace('a-b-c', '-', '+')", "text:a+b+c"},
	{"replace('aaa', 'a', 'bb')", "text:bbbbbb"},
	{"replace('abc', '', 'x')", "text:abc"},
	{"replace('abc', 'bc', '')", "text:a"},
	{"replace('abc', 'x', 'y')", "text:abc"},
	{"replace(utf, '\xc3\x9f', 'ss')", "text:Gr\xc3\xbcsse, Welt"},
	{"replace(price, '.', ',')", "text:19,99"},
	{"findstring('abcabc', 'bc')", "int:2"},
	{"findstring('abcabc', 'bc', 2)", "int:5"},
	{"findstring('abcabc', 'bc', 3)", "int:0"},
	{"findstring('abc', 'x')", "int:0"},
	{"findstring('abc', '')", "int:0"},
	{"findstring(utf, 'e')", "int:5"},
	{"findstring(utf, 'W')", "int:8"},
	{"findstring('aaaa', 'aa', 2)", "int:3"},
	{"findstring('abc', 'a', 0)", "error:findstring(): the occurrence must be 1 or more, got 0"},
	{"token('a little white dog', ' ', 2)", "text:little"},
	{"token('  a  b', ' ', 1)", "text:a"},
	{"token(csv, ',', 3)", "text:c"},
	{"token(csv, ',', 4)", "text:"},
	{"token('a;b,c', ';,', 3)", "text:c"},
	{"token(\"Full Name\", ' ', 2)", "text:King"},
	{"token(emoji, '\xf0\x9f\x98\x80', 2)", "text:b"},
	{"token('abc', '', 1)", "text:abc"},
	{"token('x', ',', 0)", "error:token(): the token number must be 1 or more, got 0"},
	{"tokencount(csv, ',')", "int:3"},
	{"tokencount('', ',')", "int:0"},
	{"tokencount(',,,', ',')", "int:0"},
	{"tokencount('a b c', ' ')", "int:3"},
	{"reverse('abc')", "text:cba"},
	{"reverse(utf)", "text:tleW ,e\xc3\x9f\xc3\xbcrG"},
	{"reverse(emoji)", "text:b\xf0\x9f\x98\x80" "a"},
	{"reverse('')", "text:"},
	{"replicate('ab', 3)", "text:ababab"},
	{"replicate('ab', 0)", "text:"},
	{"replicate('', 1000000000)", "text:"},
	{"replicate('ab', -1)", "error:replicate(): the count must not be negative, got -1"},
	{"len(replicate('x', 1000000))", "int:1000000"},
	{"replicate('x', 300000000)", "error:the expression's result is too large (over 256 MiB)"},
	{"replicate('xy', 9223372036854775807)", "error:the expression's result is too large (over 256 MiB)"},
	{"len(replace(replicate('a', 100000), 'a', replicate('b', 10000)))",
	 "error:the expression's result is too large (over 256 MiB)"},

	/* conversions */
	{"string(42)", "text:42"},
	{"string(-1.50)", "text:-1.50"},
	{"string(rate)", "text:2.5"},
	{"string(active)", "text:true"},
	{"string(false)", "text:false"},
	{"string(born)", "text:1815-12-10"},
	{"string(created)", "text:2024-03-05 14:30:15.25"},
	{"string(doc)", "text:{\"a\":1}"},
	{"string(first_name)", "text:Ada"},
	{"string(blob)", "error:field 'blob': cannot convert bytes (2 bytes) to text: not valid UTF-8"},
	{"int('42')", "int:42"},
	{"int(' 42 ')", "int:42"},
	{"int('+42')", "int:42"},
	{"int('-42')", "int:-42"},
	{"int('42.0')", "int:42"},
	{"int('1e3')", "int:1000"},
	{"int('42.5')", "error:cannot convert text '42.5' to integer: not a whole number"},
	{"int(code)", "int:123"},
	{"int(bad)", "error:field 'bad': cannot convert text 'abc' to integer"},
	{"int(trim(bad))", "error:field 'bad': cannot convert text 'abc' to integer"},
	{"int(first_name + bad)", "error:cannot convert text 'Adaabc' to integer"},
	{"int('')", "error:cannot convert text '' to integer"},
	{"int(3.9)", "int:3"},
	{"int(-3.9)", "int:-3"},
	{"int(rate)", "int:2"},
	{"int(true)", "int:1"},
	{"int(born)", "error:field 'born': cannot convert date '1815-12-10' to integer"},
	{"int('99999999999999999999')", "error:cannot convert text '99999999999999999999' to integer: out of range"},
	{"int(1e19)", "error:cannot convert float 1e+19 to integer: out of range"},
	{"int(99999999999999999999.5)", "error:cannot convert decimal 99999999999999999999.5 to integer: out of range"},
	{"int('-9223372036854775808')", "int:-9223372036854775808"},
	{"float('1.5')", "float:1.5"},
	{"float(price)", "float:19.99"},
	{"float(age)", "float:36"},
	{"float('x')", "error:cannot convert text 'x' to float"},
	{"float('inf')", "error:cannot convert text 'inf' to float"},
	{"float('nan')", "error:cannot convert text 'nan' to float"},
	{"float('0x10')", "error:cannot convert text '0x10' to float"},
	{"float('1e999')", "error:cannot convert text '1e999' to float"},
	{"decimal('1.005', 2)", "decimal:1.01"},
	{"decimal('-1.005', 2)", "decimal:-1.01"},
	{"decimal(2.5, 3)", "decimal:2.500"},
	{"decimal(price, 0)", "decimal:20"},
	{"decimal(price, 39)", "error:decimal(): the scale must be 0 to 38, got 39"},
	{"decimal(dec_big, 30)", "error:field 'dec_big': cannot convert decimal 12345678901234567890.123456789012345678 to decimal: more than 38 digits"},
	{"decimal('abc')", "error:cannot convert text 'abc' to decimal"},
	{"decimal(bad)", "error:field 'bad': cannot convert text 'abc' to decimal"},
	{"decimal('1e3')", "decimal:1000"},
	{"decimal('1.5e-3')", "decimal:0.0015"},
	{"decimal(' 007.50 ')", "decimal:7.50"},
	{"decimal('-0.00')", "decimal:0.00"},
	{"decimal('123456789012345678901234567890123456789')", "error:cannot convert text '123456789012345678901234567890123456789' to decimal: more than 38 digits"},
	{"decimal('0.1234567890123456789012345678901234567891')", "decimal:0.12345678901234567890123456789012345679"},
	{"decimal('9.999999999999999999999999999999999999999')", "decimal:10.000000000000000000000000000000000000"},
	{"decimal(1.5e0)", "decimal:1.5"},
	{"decimal(rate)", "decimal:2.5"},
	{"decimal(ratio)", "decimal:0.1"},
	{"decimal(1e300)", "error:cannot convert float 1e+300 to decimal: out of range"},
	{"decimal(active)", "decimal:1"},
	{"bool('yes')", "bool:true"},
	{"bool('0')", "bool:false"},
	{"bool('FALSE')", "bool:false"},
	{"bool(2)", "bool:true"},
	{"bool(0.0)", "bool:false"},
	{"bool('maybe')", "error:cannot convert text 'maybe' to boolean"},
	{"bool(flag_s)", "bool:true"},
	{"bool(born)", "error:field 'born': cannot convert date '1815-12-10' to boolean"},
	{"datetime('2024-03-05')", "timestamp:2024-03-05 00:00:00"},
	{"datetime('2024-03-05T10:20:30Z')", "timestamptz:2024-03-05 10:20:30+00:00"},
	{"datetime('2024-03-05 10:20:30+02:00')", "timestamptz:2024-03-05 08:20:30+00:00"},
	{"datetime('2024-03-05 01:20:30-0130')", "timestamptz:2024-03-05 02:50:30+00:00"},
	{"datetime('2024-03-05 10:20')", "timestamp:2024-03-05 10:20:00"},
	{"datetime('2024-03-05 24:00:00')", "timestamp:2024-03-06 00:00:00"},
	{"datetime('2024-03-05 10:20:30.123456789')", "timestamp:2024-03-05 10:20:30.123456"},
	{"datetime('2024-03-05 10:20:30,5')", "timestamp:2024-03-05 10:20:30.5"},
	{"datetime('2024-02-30')", "error:cannot convert text '2024-02-30' to datetime"},
	{"datetime('2024-03-05 25:00')", "error:cannot convert text '2024-03-05 25:00' to datetime"},
	{"datetime('0000-01-01')", "error:cannot convert text '0000-01-01' to datetime"},
	{"datetime('0001-01-01 00:00:00+01:00')", "error:cannot convert text '0001-01-01 00:00:00+01:00' to datetime"},
	{"datetime('9999-12-31 23:59:59.999999')", "timestamp:9999-12-31 23:59:59.999999"},
	{"datetime(born)", "timestamp:1815-12-10 00:00:00"},
	{"datetime(created)", "timestamp:2024-03-05 14:30:15.25"},
	{"datetime(5)", "error:cannot convert integer 5 to datetime"},
	{"date(created)", "date:2024-03-05"},
	{"date(updated)", "date:2024-03-05"},
	{"date('2024-03-05 23:59:59')", "date:2024-03-05"},
	{"date('2024-03-05T23:30:00-01:00')", "date:2024-03-06"},
	{"date('2024-13-01')", "error:cannot convert text '2024-13-01' to date"},
	{"date(bad)", "error:field 'bad': cannot convert text 'abc' to date"},

	/* dates */
	{"year(born)", "int:1815"},
	{"month(born)", "int:12"},
	{"day(born)", "int:10"},
	{"year('2024-01-02')", "int:2024"},
	{"year(bad)", "error:field 'bad': cannot convert text 'abc' to datetime"},
	{"dateadd('day', 1, born)", "date:1815-12-11"},
	{"dateadd(day, 1, born)", "date:1815-12-11"},
	{"dateadd(DAY, 1, born)", "date:1815-12-11"},
	{"dateadd(dd, -10, born)", "date:1815-11-30"},
	{"dateadd(d, 21, born)", "date:1815-12-31"},
	{"dateadd(d, 22, born)", "date:1816-01-01"},
	{"dateadd('month', 1, '2024-01-31')", "date:2024-02-29"},
	{"dateadd('month', 1, '2023-01-31')", "date:2023-02-28"},
	{"dateadd(mm, -1, '2024-03-31')", "date:2024-02-29"},
	{"dateadd(m, 13, '2024-12-15')", "date:2026-01-15"},
	{"dateadd(year, 1, '2024-02-29')", "date:2025-02-28"},
	{"dateadd(yy, -2024, '2024-02-29')", "error:dateadd(): the result is out of range (years 1 to 9999)"},
	{"dateadd(quarter, 1, '2024-01-15')", "date:2024-04-15"},
	{"dateadd(week, 2, '2024-01-01')", "date:2024-01-15"},
	{"dateadd(weekday, 1, '2024-01-01')", "date:2024-01-02"},
	{"dateadd(dy, 1, '2024-01-01')", "date:2024-01-02"},
	{"dateadd(hour, 3, created)", "timestamp:2024-03-05 17:30:15.25"},
	{"dateadd(hour, 1, '2024-01-01')", "timestamp:2024-01-01 01:00:00"},
	{"dateadd(hh, 1, born)", "timestamp:1815-12-10 01:00:00"},
	{"dateadd(minute, -30, updated)", "timestamptz:2024-03-05 14:00:15+00:00"},
	{"dateadd(ms, 500, created)", "timestamp:2024-03-05 14:30:15.75"},
	{"dateadd(mcs, 1, created)", "timestamp:2024-03-05 14:30:15.250001"},
	{"dateadd(second, 86400, '2024-12-31')", "timestamp:2025-01-01 00:00:00"},
	{"dateadd(s, -1, '2024-01-01')", "timestamp:2023-12-31 23:59:59"},
	{"dateadd(month, 1, '2024-01-31 10:00')", "timestamp:2024-02-29 10:00:00"},
	{"dateadd(year, 10000, born)", "error:dateadd(): the result is out of range (years 1 to 9999)"},
	{"dateadd(day, 9223372036854775807, born)", "error:dateadd(): the result is out of range (years 1 to 9999)"},
	{"dateadd(second, 9223372036854775807, born)", "error:dateadd(): the result is out of range (years 1 to 9999)"},
	{"dateadd(ms, -9223372036854775807, born)", "error:dateadd(): the result is out of range (years 1 to 9999)"},
	{"dateadd(day, 1.5, born)", "error:dateadd(): argument 2 must be a whole number, not decimal 1.5"},
	{"dateadd(day, nul, born)", "null"},
	{"dateadd(day, 1, nul)", "null"},
	{"dateadd(day, 1, bad)", "error:field 'bad': cannot convert text 'abc' to datetime"},
	{"dateadd('fortnight', 1, born)", "compile:line 1, column 9: unknown date part 'fortnight' (use " PARTS ")"},
	{"dateadd(nul, 1, born)", "compile:line 1, column 9: unknown date part 'nul' (use " PARTS ")"},
	{"dateadd(1, 2, born)", "compile:line 1, column 9: expected a date part (" PARTS ") as the first argument of dateadd()"},
	{"dateadd()", "compile:line 1, column 1: dateadd() takes 3 arguments, got 0"},
	{"datediff(day, '2024-01-01', '2024-03-01')", "int:60"},
	{"datediff(year, '2023-12-31', '2024-01-01')", "int:1"},
	{"datediff(yyyy, '2024-01-01', '2024-12-31')", "int:0"},
	{"datediff(month, '2024-01-31', '2024-02-01')", "int:1"},
	{"datediff(quarter, '2024-03-31', '2024-04-01')", "int:1"},
	{"datediff(hour, '2024-01-01 23:59', '2024-01-02 00:01')", "int:1"},
	{"datediff(minute, created, dateadd(hour, 2, created))", "int:120"},
	{"datediff(week, '2024-01-06', '2024-01-07')", "int:1"},
	{"datediff(week, '2024-01-07', '2024-01-13')", "int:0"},
	{"datediff(second, '2024-01-01', '2023-12-31 23:59:00')", "int:-60"},
	{"datediff(ms, '2024-01-01', '2024-01-01 00:00:01.5')", "int:1500"},
	{"datediff(day, born, '1815-12-10')", "int:0"},
	{"datediff(day, '0001-01-01', '9999-12-31')", "int:3652058"},
	{"datediff(mcs, '0001-01-01', '9999-12-31')", "int:315537811200000000"},
	{"datediff(day, updated, created)", "int:0"},
	{"datediff(day, born, 5)", "error:cannot convert integer 5 to datetime"},
	{"datepart(weekday, '2024-01-07')", "int:1"},
	{"datepart(dw, '2024-01-06')", "int:7"},
	{"datepart(week, '2024-01-07')", "int:2"},
	{"datepart(week, '2024-01-01')", "int:1"},
	{"datepart(wk, '2023-12-31')", "int:53"},
	{"datepart(dayofyear, '2024-12-31')", "int:366"},
	{"datepart(quarter, born)", "int:4"},
	{"datepart(hour, created)", "int:14"},
	{"datepart(hour, born)", "int:0"},
	{"datepart(mi, created)", "int:30"},
	{"datepart(n, created)", "int:30"},
	{"datepart(ss, created)", "int:15"},
	{"datepart(ms, created)", "int:250"},
	{"datepart(mcs, created)", "int:250000"},
	{"datepart(yy, created)", "int:2024"},
	{"datepart('MONTH', created)", "int:3"},
	{"datepart(day, '1969-12-31 23:59:59')", "int:31"},
	{"datepart(weekday, '1969-12-28')", "int:1"},
	{"datepart(weekday, '0001-01-01')", "int:2"},
	{"getdate()", "timestamptz:2024-06-01 12:00:00+00:00"},
	{"getutcdate()", "timestamp:2024-06-01 12:00:00"},
	{"datediff(year, born, getdate())", "int:209"},
	{"getdate() > created", "bool:true"},

	/* comparisons */
	{"1 = 1", "bool:true"},
	{"1 = 1.0", "bool:true"},
	{"1 = 1e0", "bool:true"},
	{"1 != 2", "bool:true"},
	{"1 <> 1", "bool:false"},
	{"1 == 1", "bool:true"},
	{"price > 19", "bool:true"},
	{"price = 19.990", "bool:true"},
	{"price < 20.0e0", "bool:true"},
	{"2 < 10", "bool:true"},
	{"2 <= 2", "bool:true"},
	{"3 >= 4", "bool:false"},
	{"'2' < '10'", "bool:false"},
	{"'b' > 'a'", "bool:true"},
	{"'ab' > 'a'", "bool:true"},
	{"'a' < 'B'", "bool:false"},
	{"code = 123", "bool:true"},
	{"123 = code", "bool:true"},
	{"code = '123'", "bool:false"},
	{"code > 99.5", "bool:true"},
	{"bad = 1", "error:field 'bad': cannot convert text 'abc' to a number"},
	{"1 = bad", "error:field 'bad': cannot convert text 'abc' to a number"},
	{"active = true", "bool:true"},
	{"active = 1", "bool:true"},
	{"active = 'true'", "bool:true"},
	{"active = 'nope'", "error:cannot convert text 'nope' to boolean"},
	{"flag_s = true", "bool:true"},
	{"born < '1900-01-01'", "bool:true"},
	{"'1900-01-01' > born", "bool:true"},
	{"created > born", "bool:true"},
	{"created = '2024-03-05 14:30:15.25'", "bool:true"},
	{"updated = '2024-03-05T15:30:15+01:00'", "bool:true"},
	{"updated = created", "bool:false"},
	{"born = datetime('1815-12-10')", "bool:true"},
	{"born = 'x'", "error:cannot convert text 'x' to datetime"},
	{"born = 5", "error:cannot compare date '1815-12-10' (field 'born') with integer 5"},
	{"doc = '{\"a\":1}'", "bool:true"},
	{"nul = nul", "null"},
	{"nul != 1", "null"},
	{"first_name != 'Ada'", "bool:false"},
	{"first_name <> 'ada'", "bool:true"},
	{"first_name == 'Ada'", "bool:true"},
	{"lower(first_name) = 'ada'", "bool:true"},
	{"big = 9223372036854775807.0", "bool:true"},
	{"9223372036854775807 < 9223372036854775808", "bool:true"},
	{"-0.0 = 0", "bool:true"},
	{"0.1 + 0.2 = 0.3", "bool:true"},
	{"float('0.1') + float('0.2') = 0.3", "bool:false"},
	{"rate = 2.5", "bool:true"},
	{"1 < 2 < 3", "compile:line 1, column 7: comparisons cannot be chained: combine them with 'and'"},

	/* logic */
	{"true and false", "bool:false"},
	{"true or false", "bool:true"},
	{"not true", "bool:false"},
	{"!false", "bool:true"},
	{"true && true", "bool:true"},
	{"false || true", "bool:true"},
	{"nul = 1 and false", "bool:false"},
	{"nul = 1 and true", "null"},
	{"nul = 1 or true", "bool:true"},
	{"nul = 1 or false", "null"},
	{"not (nul = 1)", "null"},
	{"false and 1 / 0 = 1", "bool:false"},
	{"true or 1 / 0 = 1", "bool:true"},
	{"1 and 0", "bool:false"},
	{"age and 1.5", "bool:true"},
	{"'yes' and 'true'", "bool:true"},
	{"first_name and true", "error:a condition must be true or false, not text 'Ada' (field 'first_name')"},
	{"not born", "error:a condition must be true or false, not date '1815-12-10' (field 'born')"},
	{"NOT FALSE AND TRUE", "bool:true"},
	{"not 1 = 2", "bool:true"},
	{"true or false and false", "bool:true"},
	{"(true or false) and false", "bool:false"},
	{"age >= 36 and active", "bool:true"},

	/* conditional */
	{"active ? 'yes' : 'no'", "text:yes"},
	{"nul = 1 ? 'a' : 'b'", "text:b"},
	{"age > 40 ? 'old' : age > 30 ? 'mid' : 'young'", "text:mid"},
	{"true ? 1 : 1 / 0", "int:1"},
	{"false ? 1 / 0 : 2", "int:2"},
	{"(true ? false : true) ? 'x' : 'y'", "text:y"},
	{"true ? false ? 1 : 2 : 3", "int:2"},
	{"1 + (active ? 1 : 2) * 10", "int:11"},
	{"bad ? 1 : 2", "error:a condition must be true or false, not text 'abc' (field 'bad')"},

	/* fields */
	{"frist_name", "compile:line 1, column 1: unknown field 'frist_name' (did you mean 'first_name'?)"},
	{"zzz", "compile:line 1, column 1: unknown field 'zzz'"},
	{"1 + \n  agee", "compile:line 2, column 3: unknown field 'agee' (did you mean 'age'?)"},
	{"\"\"", "compile:line 1, column 1: empty quoted name \"\""},
	{"\"a\"\"b\"", "compile:line 1, column 1: unknown field 'a\"b'"},
	{"\"Full Name\" + ' (' + age + ')'", "text:Ada King (36)"},

	/* syntax errors */
	{"", "compile:line 1, column 1: expected an expression, found end of input"},
	{"   ", "compile:line 1, column 4: expected an expression, found end of input"},
	{"1 +", "compile:line 1, column 4: expected an expression, found end of input"},
	{"(1 + 2", "compile:line 1, column 7: expected ')' to close the '(' at line 1, column 1, found end of input"},
	{"(1 + 2 3)", "compile:line 1, column 8: expected ')' to close the '(' at line 1, column 1, found number 3"},
	{"1 + 2)", "compile:line 1, column 6: expected an operator or the end of the expression, found ')'"},
	{"'abc", "compile:line 1, column 1: unterminated string: expected a closing '"},
	{"'abc''", "compile:line 1, column 1: unterminated string: expected a closing '"},
	{"\"abc", "compile:line 1, column 1: unterminated quoted name: expected a closing \""},
	{"1 +\n  # 2", "compile:line 2, column 3: unexpected character '#'"},
	{"1 +\r\n\t@", "compile:line 2, column 2: unexpected character '@'"},
	{"1 \x01", "compile:line 1, column 3: unexpected control character 0x01"},
	{"upper(first_name", "compile:line 1, column 17: expected ',' or ')' in the arguments of upper() (opened at line 1, column 6), found end of input"},
	{"upper(first_name;", "compile:line 1, column 17: unexpected character ';'"},
	{"upper(first_name, 1)", "compile:line 1, column 1: upper() takes 1 argument, got 2"},
	{"upper()", "compile:line 1, column 1: upper() takes 1 argument, got 0"},
	{"substring('a')", "compile:line 1, column 1: substring() takes 2 to 3 arguments, got 1"},
	{"coalesce()", "compile:line 1, column 1: coalesce() takes at least 1 argument, got 0"},
	{"getdate(1)", "compile:line 1, column 1: getdate() takes 0 arguments, got 1"},
	{"upper(,)", "compile:line 1, column 7: expected an expression, found ','"},
	{"UPPER(first_name)", "compile:line 1, column 1: unknown function 'UPPER' (function names are lowercase: 'upper')"},
	{"foo(1)", "compile:line 1, column 1: unknown function 'foo'"},
	{"1 2", "compile:line 1, column 3: expected an operator or the end of the expression, found number 2"},
	{"'a' 'b'", "compile:line 1, column 5: expected an operator or the end of the expression, found string 'b'"},
	{"first_name last_name", "compile:line 1, column 12: expected an operator or the end of the expression, found 'last_name'"},
	{"12abc", "compile:line 1, column 3: unexpected 'a' after the number '12'"},
	{"1.2.3", "compile:line 1, column 4: unexpected '.' after the number '1.2'"},
	{"1e", "compile:line 1, column 2: expected the digits of an exponent after '1e'"},
	{"1e+", "compile:line 1, column 2: expected the digits of an exponent after '1e+'"},
	{"active & true", "compile:line 1, column 8: unexpected '&' (use 'and' or '&&')"},
	{"active | true", "compile:line 1, column 8: unexpected '|' (use 'or' or '||')"},
	{"true ? 1", "compile:line 1, column 9: expected ':' to go with the '?' at line 1, column 6, found end of input"},
	{"? 1 : 2", "compile:line 1, column 1: expected an expression, found '?'"},
	{"*", "compile:line 1, column 1: expected an expression, found '*'"},
	{"not", "compile:line 1, column 4: expected an expression, found end of input"},
	{"'Gr\xc3\xbc\xc3\x9f" "e' +", "compile:line 1, column 10: expected an expression, found end of input"},
	{"'\xc3\xbc' \xc3\xbc", "compile:line 1, column 5: expected an operator or the end of the expression, found '\xc3\xbc'"},
	{"'\xff'", "compile:line 1, column 2: invalid UTF-8 byte 0xff"},
	{"'a\xc3'", "compile:line 1, column 3: invalid UTF-8 byte 0xc3"},
	{"\n\n  'x' + \xed\xa0\x80", "compile:line 3, column 9: invalid UTF-8 byte 0xed"},
	{"((((", "compile:line 1, column 5: expected an expression, found end of input"},
	{"lookup(first_name, 1)", "compile:line 1, column 8: lookup() needs the task name in quotes as its first argument, as in lookup('companies', company_id)"},
	{"lookup('', 1)", "compile:line 1, column 8: lookup() needs the task name in quotes as its first argument, as in lookup('companies', company_id)"},
	{"lookup('companies')", "compile:line 1, column 1: lookup() takes 2 arguments, got 1"},

	/* the examples of docs/expressions.md */
	{"upper('stra\xc3\x9f" "e')", "text:STRA\xc3\x9f" "E"},
	{"lower('\xc3\x84\xc3\x96\xc3\x9c')", "text:\xc3\xa4\xc3\xb6\xc3\xbc"},
	{"trim('  pad  ')", "text:pad"},
	{"ltrim('  pad  ')", "text:pad  "},
	{"rtrim('  pad  ')", "text:  pad"},
	{"len('Gr\xc3\xbc\xc3\x9f" "e')", "int:5"},
	{"round(2.675e0, 2)", "float:2.68"},
	{"string(19.99)", "text:19.99"},
	{"int('00123')", "int:123"},
	{"floor(-1.5)", "decimal:-2"},
	{"ceiling(1.2)", "decimal:2"},
	{"abs(-1.25)", "decimal:1.25"},
	{"datetime('2024-03-05T10:20:30+02:00')", "timestamptz:2024-03-05 08:20:30+00:00"},
	{"round(2.675, 2)", "decimal:2.68"},
	{"round(2.665, 2)", "decimal:2.67"},
	{"round(-2.5)", "decimal:-3"},
	{"round(2.4)", "decimal:2"},
	{"round(1234.5678, -2)", "decimal:1200"},
	{"round(1234, -2)", "int:1200"},
	{"round(1250, -2)", "int:1300"},
	{"round(-1250, -2)", "int:-1300"},
	{"round(9223372036854775807, -1)", "error:integer overflow in round()"},
	{"round(1234, -30)", "int:0"},
	{"round(2.5e0)", "float:3"},
	{"round(1.5, 5)", "decimal:1.5"},
	{"round(price, 1)", "decimal:20.0"},
	{"round(price, nul)", "null"},
	{"floor(1.5)", "decimal:1"},
	{"floor(rate)", "float:2"},
	{"ceiling(rate)", "float:3"},
	{"floor(7)", "int:7"},
	{"ceiling(-0.5)", "decimal:0"},
	{"abs(-5)", "int:5"},
	{"abs(-rate)", "float:2.5"},
	{"abs(-9223372036854775808)", "error:integer overflow in abs()"},
	{"abs('x')", "error:abs() needs a number, not text 'x'"},
	{"abs(first_name)", "error:abs() needs a number, not text 'Ada' (field 'first_name')"},
	{"round('1.5')", "error:round() needs a number, not text '1.5'"},

	/* found by the fuzzer (tests/fuzz/expr_fuzz.c) */
	{"getdate()", "timestamptz:2024-06-01 12:00:00+00:00"}, /* UB: NULL + 0 with no args */
	/* a timeout: replace() was quadratic under ASan (memmem per match) */
	{"len(replace(replicate('a+code', 500000), 'a', replicate('b', 100)))", "int:52500000"},
	{"findstring(replicate('ab', 100000) + 'abc', 'abc')", "int:200001"},
	{"findstring(replicate('x', 40) + 'y', replicate('x', 40) + 'y')", "int:1"},
	{"replace(replicate('xy', 20) + '-', replicate('xy', 20) + '-', 'z')", "text:z"},
};

static struct ts_expr_ctx base_ctx(void)
{
	struct ts_expr_ctx c = {0};
	c.now_us = 1717243200LL * 1000000; /* 2024-06-01 12:00:00 UTC */
	return c;
}

static void t_table(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_row *in = sample_row();
	struct ts_expr_ctx ctx = base_ctx();
	int bad = run_table(cases, sizeof cases / sizeof *cases, &s, in, &ctx, "expr");
	ts_row_free(in);
	TT_EQ_INT(bad, 0);
}

/* Generated: nesting and long chains. */
static void t_limits(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_row *in = sample_row();
	struct ts_expr_ctx ctx = base_ctx();
	char src[4096];
	char *got;

	memset(src, '(', 250);
	strcpy(src + 250, "1");
	got = run_expr(src, &s, in, &ctx);
	TT_EQ_STR(got, "compile:line 1, column 201: expression nested too deeply (more than 200 levels)");
	free(got);

	/* 200 levels are fine */
	memset(src, '(', 199);
	strcpy(src + 199, "1");
	memset(src + 200, ')', 199);
	src[399] = 0;
	got = run_expr(src, &s, in, &ctx);
	TT_EQ_STR(got, "int:1");
	free(got);

	/* a left-deep chain is a deep tree */
	size_t o = 0;
	for (int i = 0; i < 300; i++)
		o += (size_t)sprintf(src + o, i ? "-1" : "1");
	got = run_expr(src, &s, in, &ctx);
	TT_EQ_STR(got, "compile:line 1, column 400: expression nested too deeply (more than 200 levels)");
	free(got);

	/* a long chain of + is one n-ary node (split every 255 operands) */
	o = 0;
	for (int i = 0; i < 1000; i++)
		o += (size_t)sprintf(src + o, i ? "+1" : "1");
	got = run_expr(src, &s, in, &ctx);
	TT_EQ_STR(got, "int:1000");
	free(got);
	o = 0;
	for (int i = 0; i < 600; i++)
		o += (size_t)sprintf(src + o, i ? "+'ab'" : "''");
	got = run_expr(src, &s, in, &ctx);
	TT_ASSERT(got && strlen(got) == 5 + 599 * 2);
	free(got);

	/* many "not" in a row */
	o = 0;
	for (int i = 0; i < 300; i++)
		o += (size_t)sprintf(src + o, "not ");
	strcpy(src + o, "true");
	got = run_expr(src, &s, in, &ctx);
	TT_ASSERT(got && strstr(got, "nested too deeply"));
	free(got);

	/* coalesce with 255 arguments; 256 is too many */
	o = (size_t)sprintf(src, "coalesce(nul");
	for (int i = 1; i < 255; i++)
		o += (size_t)sprintf(src + o, ",%d", i);
	strcpy(src + o, ")");
	got = run_expr(src, &s, in, &ctx);
	TT_EQ_STR(got, "int:1");
	free(got);
	strcpy(src + o, ",9)");
	got = run_expr(src, &s, in, &ctx);
	TT_ASSERT(got && strstr(got, "too many arguments for coalesce() (at most 255)"));
	free(got);
	ts_row_free(in);
}

static void t_field_ref(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_error err = {0};
	struct ts_expr *e = NULL;
	TT_OK(ts_expr_compile("last_name", &s, &e, &err));
	TT_EQ_INT(ts_expr_field_ref(e), 1);
	ts_expr_free(e);
	TT_OK(ts_expr_compile(" ( LAST_NAME ) ", &s, &e, &err));
	TT_EQ_INT(ts_expr_field_ref(e), 1);
	ts_expr_free(e);
	TT_OK(ts_expr_compile("\"Full Name\"", &s, &e, &err));
	TT_EQ_INT(ts_expr_field_ref(e), 16);
	ts_expr_free(e);
	TT_OK(ts_expr_compile("last_name + ''", &s, &e, &err));
	TT_EQ_INT(ts_expr_field_ref(e), -2);
	ts_expr_free(e);
	TT_OK(ts_expr_compile("'x'", &s, &e, &err));
	TT_EQ_INT(ts_expr_field_ref(e), -2);
	ts_expr_free(e);
	TT_OK(ts_expr_compile("anything", NULL, &e, &err));
	TT_EQ_INT(ts_expr_field_ref(e), -1);
	ts_expr_free(e);
	TT_EQ_INT(ts_expr_field_ref(NULL), -2);
	ts_expr_free(NULL);
}

static void t_fields_and_lookups(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_error err = {0};
	struct ts_expr *e = NULL;
	const char *const *names;
	TT_OK(ts_expr_compile("FIRST_NAME + ' ' + last_name + first_name + lookup('a', age) + "
			      "lookup('b', 1) + lookup('a', 2)",
			      &s, &e, &err));
	TT_EQ_INT(ts_expr_fields(e, &names), 3);
	TT_EQ_STR(names[0], "first_name"); /* the scope's spelling */
	TT_EQ_STR(names[1], "last_name");
	TT_EQ_STR(names[2], "age");
	TT_EQ_INT(ts_expr_lookups(e, &names), 2);
	TT_EQ_STR(names[0], "a");
	TT_EQ_STR(names[1], "b");
	ts_expr_free(e);
	TT_OK(ts_expr_compile("'constant'", &s, &e, &err));
	TT_EQ_INT(ts_expr_fields(e, &names), 0);
	TT_EQ_INT(ts_expr_lookups(e, &names), 0);
	ts_expr_free(e);
}

/* Without a scope, field i of the input row is the i-th name read. */
static void t_unscoped(void)
{
	struct ts_error err = {0};
	struct ts_expr *e = NULL;
	const char *const *names;
	TT_OK(ts_expr_compile("b * 10 + a - \"b\"", NULL, &e, &err));
	TT_EQ_INT(ts_expr_fields(e, &names), 2);
	TT_EQ_STR(names[0], "b");
	TT_EQ_STR(names[1], "a");
	struct ts_row *in = ts_row_new(2), *out = ts_row_new(1);
	ts_row_set_int(in, 0, 4);
	ts_row_set_int(in, 1, 7);
	TT_OK(ts_expr_eval(e, in, NULL, out, 0, &err));
	TT_EQ_INT(out->v[0].type, TS_INT);
	TT_EQ_INT(out->v[0].u.i, 43);
	/* a row too short is the caller's bug, said clearly */
	struct ts_row *shortrow = ts_row_new(1);
	TT_ASSERT(ts_expr_eval(e, shortrow, NULL, out, 0, &err) == -1);
	TT_EQ_INT(err.code, TS_EINTERNAL);
	TT_EQ_STR(err.msg, "field 'a': the input row has 1 values, not 2");
	ts_error_clear(&err);
	/* and an output slot out of range */
	TT_ASSERT(ts_expr_eval(e, in, NULL, out, 1, &err) == -1);
	TT_EQ_INT(err.code, TS_EINTERNAL);
	ts_row_free(shortrow);
	ts_row_free(in);
	ts_row_free(out);
	ts_expr_free(e);
	/* error codes: compile errors are TS_EINVAL */
	ts_error_clear(&err);
	TT_ASSERT(ts_expr_compile("1 +", NULL, &e, &err) == -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	TT_ASSERT(e == NULL);
}

/* ---- lookup() ---- */

struct lk_state {
	int calls;
	char task[64];
};

static int lk_fn(void *ud, const char *task, const struct ts_value *key, struct ts_row *out,
		 size_t i, struct ts_error *err)
{
	struct lk_state *st = ud;
	st->calls++;
	snprintf(st->task, sizeof st->task, "%s", task);
	if (strcmp(task, "companies") == 0) {
		if (key->type == TS_TEXT && strcmp(key->u.s.p, "acme") == 0) {
			ts_row_set_int(out, i, 42);
			return 0;
		}
		return ts_error_set(err, TS_ENOENT, "companies: record '%s' is not paired yet",
				    key->type == TS_TEXT ? key->u.s.p : "?");
	}
	if (strcmp(task, "names") == 0) {
		/* long text so that the scratch row's arena has to grow */
		char buf[3000];
		memset(buf, 'a' + (int)(key->u.i % 26), sizeof buf);
		return ts_row_set_str(out, i, TS_TEXT, buf, sizeof buf);
	}
	if (strcmp(task, "echo") == 0) {
		char *b = NULL;
		size_t cap = 0, len = 0;
		ts_value_to_text(key, &b, &cap, &len);
		char t[200];
		snprintf(t, sizeof t, "%s:%s", ts_type_name(key->type), b);
		free(b);
		return ts_row_set_str(out, i, TS_TEXT, t, strlen(t));
	}
	return ts_error_set(err, TS_ENOENT, "no task '%s'", task);
}

static void t_lookup(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_row *in = sample_row();
	struct lk_state st = {0};
	struct ts_expr_ctx ctx = base_ctx();
	ctx.lookup = lk_fn;
	ctx.lookup_ud = &st;
	static const struct expr_case t[] = {
		{"lookup('companies', company)", "int:42"},
		{"lookup('companies', 'acme') + 1", "int:43"},
		{"string(lookup('companies', company)) + '!'", "text:42!"},
		{"lookup('companies', nul)", "null"},
		{"lookup('companies', first_name)", "error:companies: record 'Ada' is not paired yet"},
		{"len(lookup('names', 1) + lookup('names', 2) + lookup('names', 3))", "int:9000"},
		{"substring(lookup('names', 1) + lookup('names', 2), 3000, 2)", "text:bc"},
		{"lookup('echo', price)", "text:decimal:19.99"},
		{"lookup('echo', born)", "text:date:1815-12-10"},
		{"lookup('echo', created)", "text:timestamp:2024-03-05 14:30:15.25"},
		{"lookup('echo', updated)", "text:timestamptz:2024-03-05 14:30:15+00:00"},
		{"lookup('echo', age * 2)", "text:int:72"},
		{"lookup('echo', active)", "text:bool:true"},
		{"lookup('echo', doc)", "text:json:{\"a\":1}"},
		{"lookup('nope', 1)", "error:no task 'nope'"},
	};
	int bad = run_table(t, sizeof t / sizeof *t, &s, in, &ctx, "lookup");
	TT_EQ_INT(bad, 0);
	/* a null key does not call the callback */
	st.calls = 0;
	char *got = run_expr("lookup('companies', nul)", &s, in, &ctx);
	TT_EQ_STR(got, "null");
	TT_EQ_INT(st.calls, 0);
	free(got);
	/* the error code of the callback survives (ENOENT: not paired yet) */
	struct ts_error err = {0};
	struct ts_expr *e = NULL;
	struct ts_row *out = ts_row_new(1);
	TT_OK(ts_expr_compile("lookup('companies', first_name)", &s, &e, &err));
	TT_ASSERT(ts_expr_eval(e, in, &ctx, out, 0, &err) == -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_expr_free(e);
	/* no lookup function in the context */
	ts_error_clear(&err);
	struct ts_expr_ctx bare = base_ctx();
	TT_OK(ts_expr_compile("lookup('companies', company)", &s, &e, &err));
	TT_ASSERT(ts_expr_eval(e, in, &bare, out, 0, &err) == -1);
	TT_EQ_STR(err.msg, "lookup('companies'): lookups are not available here");
	ts_expr_free(e);
	ts_row_free(out);
	ts_row_free(in);
}

/* ---- no allocation per record, and concurrent use ---- */

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static void t_steady_state(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_row *in = sample_row(), *out = ts_row_new(4);
	struct ts_error err = {0};
	struct ts_expr_ctx ctx = base_ctx();
	const char *src[4] = {"first_name + ' ' + last_name",
			      "upper(first_name) + string(price * qty) + replicate('x', 5000)",
			      "dateadd(day, age, born) > created ? 'a' : token(csv, ',', 2)",
			      "age"};
	struct ts_expr *e[4];
	for (int k = 0; k < 4; k++)
		TT_OK(ts_expr_compile(src[k], &s, &e[k], &err));
	for (int r = 0; r < 100; r++) {
		ts_row_reset(out);
		for (int k = 0; k < 4; k++)
			TT_OK(ts_expr_eval(e[k], in, &ctx, out, (size_t)k, &err));
	}
	size_t before = heap_in_use();
	for (int r = 0; r < 2000; r++) {
		ts_row_reset(out);
		for (int k = 0; k < 4; k++)
			TT_OK(ts_expr_eval(e[k], in, &ctx, out, (size_t)k, &err));
	}
	size_t after = heap_in_use();
	TT_EQ_INT(after, before);
	TT_EQ_STR(out->v[0].u.s.p, "Ada Lovelace");
	TT_EQ_INT(out->v[1].u.s.n, 3 + 5 + 5000);
	TT_EQ_STR(out->v[2].u.s.p, "b");
	TT_EQ_INT(out->v[3].u.i, 36);
	for (int k = 0; k < 4; k++)
		ts_expr_free(e[k]);
	ts_row_free(in);
	ts_row_free(out);
}

struct thr {
	const struct ts_expr *e;
	const struct ts_row *in;
	int bad;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct ts_row *out = ts_row_new(1);
	struct ts_error err = {0};
	struct ts_expr_ctx ctx = base_ctx();
	for (int i = 0; i < 20000; i++) {
		ts_row_reset(out);
		if (ts_expr_eval(t->e, t->in, &ctx, out, 0, &err) ||
		    strcmp(out->v[0].u.s.p, "ADA-Lovelace-59.97") != 0)
			t->bad++;
	}
	ts_row_free(out);
	return NULL;
}

static void t_threads(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_row *in = sample_row();
	struct ts_error err = {0};
	struct ts_expr *e = NULL;
	TT_OK(ts_expr_compile("upper(first_name) + '-' + last_name + '-' + price * qty", &s, &e,
			      &err));
	struct thr t[4];
	pthread_t th[4];
	for (int k = 0; k < 4; k++) {
		t[k] = (struct thr){e, in, 0};
		TT_EQ_INT(pthread_create(&th[k], NULL, thr_main, &t[k]), 0);
	}
	int bad = 0;
	for (int k = 0; k < 4; k++) {
		pthread_join(th[k], NULL);
		bad += t[k].bad;
	}
	TT_EQ_INT(bad, 0);
	ts_expr_free(e);
	ts_row_free(in);
}

int main(void)
{
	TT_RUN(t_table);
	TT_RUN(t_limits);
	TT_RUN(t_field_ref);
	TT_RUN(t_fields_and_lookups);
	TT_RUN(t_unscoped);
	TT_RUN(t_lookup);
	TT_RUN(t_steady_state);
	TT_RUN(t_threads);
	return tt_done();
}
