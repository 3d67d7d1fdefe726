/*
 * expr_locale_test.c - the run's locale in expressions: how numbers and
 * dates become text (string(), + with a string) and how text becomes
 * numbers and dates again (decimal(), int(), float(), date(), datetime(),
 * comparisons), for the invariant culture, en-US, de-DE and fr-FR, and
 * round trips through both directions.  The process locale must not
 * matter: the invariant table runs with setlocale(LC_ALL, "de_DE.UTF-8").
 *
 * The locales must exist (CI runs locale-gen; locally see tests/expr/
 * CMakeLists.txt): a missing one fails the test, it is not skipped.
 */
#include <locale.h>

#include "expr_case.h"

static const struct expr_case invariant[] = {
	{"string(1234567)", "text:1234567"},
	{"string(1234567.891)", "text:1234567.891"},
	{"string(-1234.5e0)", "text:-1234.5"},
	{"string(rate)", "text:2.5"},
	{"'x' + rate", "text:x2.5"},
	{"string(born)", "text:1815-12-10"},
	{"string(created)", "text:2024-03-05 14:30:15.25"},
	{"string(updated)", "text:2024-03-05 14:30:15+00:00"},
	{"'x' + 1000", "text:x1000"},
	{"decimal('1,234.5')", "error:cannot convert text '1,234.5' to decimal"},
	{"decimal('1234.5')", "decimal:1234.5"},
	/* (a float result would be formatted by ts_value_to_text, which is not
	 * this test's subject) */
	{"float('2.5') = 2.5", "bool:true"},
	{"string(float('2.5'))", "text:2.5"},
	{"float('2,5')", "error:cannot convert text '2,5' to float"},
	{"date('12/10/1815')", "error:cannot convert text '12/10/1815' to date"},
	{"decimal(string(price * 1000)) = price * 1000", "bool:true"},
	{"datetime(string(created)) = created", "bool:true"},
};

static const struct expr_case en_us[] = {
	{"string(1234567)", "text:1,234,567"},
	{"string(-1234567)", "text:-1,234,567"},
	{"string(123)", "text:123"},
	{"string(1234)", "text:1,234"},
	{"string(1234567.891)", "text:1,234,567.891"},
	{"string(-1234.5e0)", "text:-1,234.5"},
	{"string(1e20)", "text:1e+20"},
	{"string(rate)", "text:2.5"},
	{"string(big)", "text:9,223,372,036,854,775,807"},
	{"string(born)", "text:12/10/1815"},
	{"string(created)", "text:03/05/2024 02:30:15 PM"},
	{"string(updated)", "text:03/05/2024 02:30:15 PM +00:00"},
	{"'x' + 1000", "text:x1,000"},
	{"string(true)", "text:true"},
	{"len(1000000)", "int:9"},
	{"decimal('1,234.5')", "decimal:1234.5"},
	{"decimal('1,234,567.891')", "decimal:1234567.891"},
	{"decimal(' -1,234.50 ')", "decimal:-1234.50"},
	{"decimal('1.5')", "decimal:1.5"},
	{"decimal('1234.5')", "decimal:1234.5"},
	{"decimal('12,34.5')", "error:cannot convert text '12,34.5' to decimal"},
	{"decimal('1,5')", "error:cannot convert text '1,5' to decimal"},
	{"decimal(',5')", "error:cannot convert text ',5' to decimal"},
	{"int('1,234')", "int:1234"},
	{"float('-1,234.5')", "float:-1234.5"},
	{"datetime('03/05/2024 02:30:15 PM')", "timestamp:2024-03-05 14:30:15"},
	{"datetime('03/05/2024 02:30:15 PM +00:00')", "timestamptz:2024-03-05 14:30:15+00:00"},
	{"datetime('03/05/2024 02:30:15 PM -02:00')", "timestamptz:2024-03-05 16:30:15+00:00"},
	{"datetime('03/05/2024 14:30')", "timestamp:2024-03-05 14:30:00"},
	{"datetime('Tue 05 Mar 2024 02:30:15 PM UTC')", "timestamp:2024-03-05 14:30:15"},
	{"date('12/10/1815')", "date:1815-12-10"},
	{"datetime('2024-03-05 14:30:15')", "timestamp:2024-03-05 14:30:15"},
	{"date('13/10/1815')", "error:cannot convert text '13/10/1815' to date"},
	{"date('02/30/2024')", "error:cannot convert text '02/30/2024' to date"},
	{"date('12/10/1815 junk')", "error:cannot convert text '12/10/1815 junk' to date"},
	{"'1,000' = 1000", "bool:true"},
	{"born = '12/10/1815'", "bool:true"},
	{"decimal(string(price * 1000)) = price * 1000", "bool:true"},
	{"decimal(string(dec_big)) = dec_big", "bool:true"},
	{"float(string(ratio * 12345.678)) = ratio * 12345.678", "bool:true"},
	{"datetime(string(updated)) = updated", "bool:true"},
	{"date(string(born)) = born", "bool:true"},
	{"int(string(big)) = big", "bool:true"},
	{"int(string(-big)) = -big", "bool:true"},
};

static const struct expr_case de_de[] = {
	{"string(1234567.891)", "text:1.234.567,891"},
	{"string(1234567)", "text:1.234.567"},
	{"string(-0.5)", "text:-0,5"},
	{"string(rate)", "text:2,5"},
	{"string(born)", "text:10.12.1815"},
	{"string(created)", "text:05.03.2024 14:30:15"},
	{"string(updated)", "text:05.03.2024 14:30:15 +00:00"},
	{"'Preis: ' + price", "text:Preis: 19,99"},
	{"'am ' + born", "text:am 10.12.1815"},
	{"string(false)", "text:false"},
	{"decimal('1.234,5')", "decimal:1234.5"},
	{"decimal('1,5')", "decimal:1.5"},
	{"decimal('1.5')", "decimal:1.5"},
	{"decimal('1.234')", "decimal:1234"},
	{"decimal('-1.234.567,891')", "decimal:-1234567.891"},
	{"decimal('1234,5')", "decimal:1234.5"},
	{"decimal('12.34,5')", "error:cannot convert text '12.34,5' to decimal"},
	{"int('1.234')", "int:1234"},
	{"int('1,0')", "int:1"},
	{"float('2,5')", "float:2.5"},
	{"float('2.5')", "float:2.5"},
	{"date('10.12.1815')", "date:1815-12-10"},
	{"datetime('05.03.2024 14:30:15')", "timestamp:2024-03-05 14:30:15"},
	{"datetime('05.03.2024 14:30:15 +01:00')", "timestamptz:2024-03-05 13:30:15+00:00"},
	{"date('2024-03-05')", "date:2024-03-05"},
	{"date('32.12.1815')", "error:cannot convert text '32.12.1815' to date"},
	{"'2,5' = rate", "bool:true"},
	{"decimal(string(price * 1000)) = price * 1000", "bool:true"},
	{"decimal(string(-dec_big)) = -dec_big", "bool:true"},
	{"float(string(rate * 1000)) = rate * 1000", "bool:true"},
	{"datetime(string(updated)) = updated", "bool:true"},
	{"date(string(born)) = born", "bool:true"},
	{"int(string(big)) = big", "bool:true"},
};

/* fr_FR groups with U+202F NARROW NO-BREAK SPACE; a space and U+00A0 read too */
#define NNBSP "\xe2\x80\xaf"
static const struct expr_case fr_fr[] = {
	{"string(1234567.891)", "text:1" NNBSP "234" NNBSP "567,891"},
	{"string(-1234)", "text:-1" NNBSP "234"},
	{"string(rate)", "text:2,5"},
	{"string(born)", "text:10/12/1815"},
	{"string(created)", "text:05/03/2024 14:30:15"},
	{"decimal('1 234,5')", "decimal:1234.5"},
	{"decimal('1\xc2\xa0" "234,5')", "decimal:1234.5"},
	{"decimal('1" NNBSP "234,5')", "decimal:1234.5"},
	{"decimal('1234,5')", "decimal:1234.5"},
	{"decimal('1 2345,5')", "error:cannot convert text '1 2345,5' to decimal"},
	{"int(' 1 234 ')", "int:1234"},
	{"date('10/12/1815')", "date:1815-12-10"},
	{"datetime('05/03/2024 14:30:15')", "timestamp:2024-03-05 14:30:15"},
	{"upper('\xc3\xa9t\xc3\xa9')", "text:\xc3\x89T\xc3\x89"},
	{"decimal(string(price * 1000)) = price * 1000", "bool:true"},
	{"int(string(big)) = big", "bool:true"},
	{"datetime(string(updated)) = updated", "bool:true"},
	{"date(string(born)) = born", "bool:true"},
};

static int run_locale(const char *name, const struct expr_case *t, size_t n)
{
	locale_t loc = newlocale(LC_ALL_MASK, name, (locale_t)0);
	if (!loc) {
		fprintf(stderr, "locale %s is missing: generate it (locale-gen, see "
				"tests/expr/CMakeLists.txt)\n",
			name);
		return 1;
	}
	struct ts_expr_scope s = sample_scope();
	struct ts_row *in = sample_row();
	struct ts_expr_ctx ctx = {0};
	ctx.locale = loc;
	int bad = run_table(t, n, &s, in, &ctx, name);
	ts_row_free(in);
	freelocale(loc);
	return bad;
}

static void t_invariant(void)
{
	struct ts_expr_scope s = sample_scope();
	struct ts_row *in = sample_row(); /* (strtod: before setlocale) */
	/* the process locale must not leak into the invariant culture */
	TT_ASSERTF(setlocale(LC_ALL, "de_DE.UTF-8") != NULL,
		   "locale de_DE.UTF-8 is missing: generate it (locale-gen)");
	struct ts_expr_ctx ctx = {0};
	int bad = run_table(invariant, sizeof invariant / sizeof *invariant, &s, in, &ctx,
			    "invariant");
	ts_row_free(in);
	setlocale(LC_ALL, "C");
	TT_EQ_INT(bad, 0);
}

static void t_en_us(void)
{
	TT_EQ_INT(run_locale("en_US.UTF-8", en_us, sizeof en_us / sizeof *en_us), 0);
}

static void t_de_de(void)
{
	TT_EQ_INT(run_locale("de_DE.UTF-8", de_de, sizeof de_de / sizeof *de_de), 0);
}

static void t_fr_fr(void)
{
	TT_EQ_INT(run_locale("fr_FR.UTF-8", fr_fr, sizeof fr_fr / sizeof *fr_fr), 0);
}

int main(void)
{
	TT_RUN(t_invariant);
	TT_RUN(t_en_us);
	TT_RUN(t_de_de);
	TT_RUN(t_fr_fr);
	return tt_done();
}
