use super::*;

fn pg(sql: &str) -> String {
    let mut out = String::new();
    query_text(sql, Dialect::Postgres, false, &mut out);
    out
}

fn pg_keep(sql: &str) -> String {
    let mut out = String::new();
    query_text(sql, Dialect::Postgres, true, &mut out);
    out
}

fn my(sql: &str) -> String {
    let mut out = String::new();
    query_text(sql, Dialect::MySql, false, &mut out);
    out
}

#[test]
fn literals_become_question_marks() {
    assert_eq!(
        pg("SELECT * FROM users WHERE id = 42 AND name = 'bob'"),
        "SELECT * FROM users WHERE id = ? AND name = ?"
    );
    assert_eq!(pg("INSERT INTO t (a, b) VALUES (1.5e-3, 'it''s')"), "INSERT INTO t (a, b) VALUES (?, ?)");
    assert_eq!(pg("SELECT $1, $2 FROM t1 WHERE c2 = -7"), "SELECT $1, $2 FROM t1 WHERE c2 = -?");
    assert_eq!(pg("SELECT E'a\\'b', $$x'y$$, $f$ body $f$"), "SELECT ?, ?, ?");
    assert_eq!(pg("SELECT \"Col 1\" FROM \"T\" -- 5 is kept\n"), "SELECT \"Col 1\" FROM \"T\" -- 5 is kept\n");
    assert_eq!(pg("SELECT 1 /* 2 */"), "SELECT ? /* 2 */");
    assert_eq!(pg("SELECT .5, x.y"), "SELECT ?, x.y");
    assert_eq!(pg("SELECT 'unterminated"), "SELECT ?");
    assert_eq!(pg("SELECT 'ü', 'x' || 'é' FROM ü1"), "SELECT ?, ? || ? FROM ü1");
    assert_eq!(
        my("SELECT * FROM `t` WHERE a = \"x\" AND b = 'y\\'z' AND c = 0x1F"),
        "SELECT * FROM `t` WHERE a = ? AND b = ? AND c = ?"
    );
}

#[test]
fn passwords_are_hidden_even_when_literals_are_kept() {
    assert_eq!(pg_keep("SELECT * FROM t WHERE a = 'x'"), "SELECT * FROM t WHERE a = 'x'");
    assert_eq!(pg_keep("ALTER ROLE bob WITH PASSWORD 'hunter2'"), "ALTER ROLE bob WITH PASSWORD ?");
    assert_eq!(
        pg_keep("CREATE USER bob ENCRYPTED password 'x' VALID UNTIL '2030-01-01'"),
        "CREATE USER bob ENCRYPTED password ? VALID UNTIL '2030-01-01'"
    );
    let mut out = String::new();
    query_text("CREATE USER 'u'@'%' IDENTIFIED BY 'pw'", Dialect::MySql, true, &mut out);
    assert_eq!(out, "CREATE USER 'u'@'%' IDENTIFIED BY ?");
}

#[test]
fn long_texts_are_cut_on_a_char_boundary() {
    let sql = format!("SELECT '{}' , {}", "x".repeat(10), "é".repeat(MAX_TEXT));
    let out = pg(&sql);
    assert!(out.len() <= MAX_TEXT && out.starts_with("SELECT ? , é"));
}

#[test]
fn operations() {
    assert_eq!(operation("  select 1").as_deref(), Some("SELECT"));
    assert_eq!(operation("/* hi */ -- x\n(SELECT 1)").as_deref(), Some("SELECT"));
    assert_eq!(operation("BEGIN").as_deref(), Some("BEGIN"));
    assert_eq!(operation("").as_deref(), None);
    assert_eq!(operation("1 + 1").as_deref(), None);
}

#[test]
fn tables() {
    let t = |s| table(s);
    assert_eq!(t("SELECT abalance FROM pgbench_accounts WHERE aid = $1").as_deref(), Some("pgbench_accounts"));
    assert_eq!(t("select * from public.\"Users\" where x = 1").as_deref(), Some("public.Users"));
    assert_eq!(t("SELECT * FROM a, b").as_deref(), None);
    assert_eq!(t("SELECT * FROM a JOIN b ON a.x = b.x").as_deref(), None);
    assert_eq!(t("SELECT * FROM (SELECT 1) s").as_deref(), None);
    assert_eq!(t("SELECT 1").as_deref(), None);
    assert_eq!(t("INSERT INTO pgbench_history (tid) VALUES (1)").as_deref(), Some("pgbench_history"));
    assert_eq!(t("UPDATE pgbench_tellers SET tbalance = 1").as_deref(), Some("pgbench_tellers"));
    assert_eq!(t("DELETE FROM t WHERE 1").as_deref(), Some("t"));
    assert_eq!(t("CREATE TABLE IF NOT EXISTS items (id int)").as_deref(), Some("items"));
    assert_eq!(t("DROP TABLE t;").as_deref(), Some("t"));
    assert_eq!(t("CREATE INDEX i ON t (x)").as_deref(), None);
    assert_eq!(t("COPY t FROM STDIN").as_deref(), Some("t"));
    assert_eq!(t("TRUNCATE TABLE t").as_deref(), Some("t"));
    assert_eq!(t("SELECT * FROM t; SELECT * FROM u").as_deref(), Some("t"));
    assert_eq!(t("BEGIN").as_deref(), None);
}
