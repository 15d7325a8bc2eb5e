//! The parser as a table: each query with the canonical text of its tree (so the shape,
//! including precedence, is visible as parentheses) or the line, column and reason of its
//! error; then a property test that printing a tree and parsing the text yields the same tree.

use fjord_logql::ast::*;
use fjord_logql::{parse_expr, plan};
use proptest::prelude::*;

/// `(query, Ok(canonical) | Err((line, col, reason substring)))`.
type Case = (
    &'static str,
    Result<&'static str, (usize, usize, &'static str)>,
);

const CASES: &[Case] = &[
    // Stream selectors and line filters.
    (r#"{app="payment"}"#, Ok(r#"{app="payment"}"#)),
    (
        r#"{app="a",env!="dev", pod=~"p.*", c!~`x`}"#,
        Ok(r#"{app="a", env!="dev", pod=~"p.*", c!~"x"}"#),
    ),
    (
        r#"{app="a"} |= "err" != "warn" |~ "x\\d" !~ "y""#,
        Ok(r#"{app="a"} |= "err" != "warn" |~ "x\\d" !~ "y""#),
    ),
    (
        r#"{app="a"} |= "a" or "b" or "c""#,
        Ok(r#"{app="a"} |= "a" or "b" or "c""#),
    ),
    (
        r#"{app="a"} |> "<_> error <_>" !> "<_> debug""#,
        Ok(r#"{app="a"} |> "<_> error <_>" !> "<_> debug""#),
    ),
    // Parsers.
    (r#"{app="a"} | json"#, Ok(r#"{app="a"} | json"#)),
    (
        r#"{app="a"} | json first="a.b", second="c[0]", third"#,
        Ok(r#"{app="a"} | json first="a.b", second="c[0]", third"#),
    ),
    (
        r#"{app="a"} | logfmt --strict --keep-empty"#,
        Ok(r#"{app="a"} | logfmt --strict --keep-empty"#),
    ),
    (
        r#"{app="a"} | logfmt host, status="code""#,
        Ok(r#"{app="a"} | logfmt host, status="code""#),
    ),
    (
        r#"{app="a"} | regexp "(?P<method>\\w+) (?P<path>\\S+)""#,
        Ok(r#"{app="a"} | regexp "(?P<method>\\w+) (?P<path>\\S+)""#),
    ),
    (
        r#"{app="a"} | pattern `<ip> - <_>`"#,
        Ok(r#"{app="a"} | pattern "<ip> - <_>""#),
    ),
    (r#"{app="a"} | unpack"#, Ok(r#"{app="a"} | unpack"#)),
    // Label filters: and binds tighter than or; `,` is and.
    (
        r#"{app="payment"} | json | status >= 500"#,
        Ok(r#"{app="payment"} | json | status>=500.0"#),
    ),
    (
        r#"{a="b"} | logfmt | duration >= 20ms or method="GET" and size <= 20KB"#,
        Ok(r#"{a="b"} | logfmt | duration>=20ms or method="GET" and size<=20000B"#),
    ),
    (
        r#"{a="b"} | logfmt | (duration >= 20ms or method="GET") and size <= 20KB"#,
        Ok(r#"{a="b"} | logfmt | (duration>=20ms or method="GET") and size<=20000B"#),
    ),
    (
        r#"{a="b"} | logfmt | level="error", status != 200"#,
        Ok(r#"{a="b"} | logfmt | level="error" and status!=200.0"#),
    ),
    (
        r#"{a="b"} | json | __error__="""#,
        Ok(r#"{a="b"} | json | __error__="""#),
    ),
    (
        r#"{a="b"} | x=~"a.*" | y = 1.5 | z == -2"#,
        Ok(r#"{a="b"} | x=~"a.*" | y==1.5 | z==-2.0"#),
    ),
    // Formatting, drop, keep, decolorize.
    (
        r#"{a="b"} | line_format "{{.status}} {{ .msg | ToUpper }}""#,
        Ok(r#"{a="b"} | line_format "{{.status}} {{ .msg | ToUpper }}""#),
    ),
    (
        r#"{a="b"} | label_format dst=src, lvl="{{ .level | ToLower }}""#,
        Ok(r#"{a="b"} | label_format dst=src, lvl="{{ .level | ToLower }}""#),
    ),
    (
        r#"{a="b"} | drop level, method="GET" | keep app, pod=~"p.*" | decolorize"#,
        Ok(r#"{a="b"} | drop level, method="GET" | keep app, pod=~"p.*" | decolorize"#),
    ),
    // Range aggregations.
    (
        r#"count_over_time({a="b"}[5m])"#,
        Ok(r#"count_over_time({a="b"} [5m])"#),
    ),
    (
        r#"rate({a="b"} |= "x" [1m] offset 1h)"#,
        Ok(r#"rate({a="b"} |= "x" [1m] offset 1h)"#),
    ),
    (
        r#"bytes_over_time({a="b"}[1h30m])"#,
        Ok(r#"bytes_over_time({a="b"} [1h30m])"#),
    ),
    (
        r#"count_over_time({a="b"}[5m] | json)"#,
        Ok(r#"count_over_time({a="b"} | json [5m])"#),
    ),
    (
        r#"absent_over_time({a="b"}[5m])"#,
        Ok(r#"absent_over_time({a="b"} [5m])"#),
    ),
    (
        r#"sum_over_time({a="b"} | logfmt | unwrap bytes(size) | __error__="" [5m]) by (host)"#,
        Ok(r#"sum_over_time({a="b"} | logfmt | unwrap bytes(size) | __error__="" [5m]) by (host)"#),
    ),
    (
        r#"quantile_over_time(0.99, {a="b"} | json | unwrap duration(latency) [5m]) by (path)"#,
        Ok(r#"quantile_over_time(0.99, {a="b"} | json | unwrap duration(latency) [5m]) by (path)"#),
    ),
    (
        r#"rate({a="b"} | unwrap n [5m])"#,
        Ok(r#"rate({a="b"} | unwrap n [5m])"#),
    ),
    // Vector aggregations.
    (
        r#"sum by (level) (count_over_time({a="b"}[1m]))"#,
        Ok(r#"sum by (level) (count_over_time({a="b"} [1m]))"#),
    ),
    (
        r#"sum(count_over_time({a="b"}[1m])) without (pod)"#,
        Ok(r#"sum without (pod) (count_over_time({a="b"} [1m]))"#),
    ),
    (
        r#"topk(3, rate({a="b"}[1m]))"#,
        Ok(r#"topk(3.0, rate({a="b"} [1m]))"#),
    ),
    (
        r#"sort_desc(rate({a="b"}[1m]))"#,
        Ok(r#"sort_desc(rate({a="b"} [1m]))"#),
    ),
    // Binary operators: precedence, associativity, bool and matching.
    ("vector(1)+vector(1)", Ok("vector(1.0) + vector(1.0)")),
    ("1 + 2 * 3", Ok("1.0 + (2.0 * 3.0)")),
    ("(1 + 2) * 3", Ok("(1.0 + 2.0) * 3.0")),
    ("1 - 2 - 3", Ok("(1.0 - 2.0) - 3.0")),
    ("2 ^ 3 ^ 2", Ok("2.0 ^ (3.0 ^ 2.0)")),
    ("1 == bool 1", Ok("1.0 == bool 1.0")),
    (
        r#"rate({a="b"}[1m]) > 10 and rate({a="c"}[1m]) or vector(0)"#,
        Ok(r#"((rate({a="b"} [1m]) > 10.0) and rate({a="c"} [1m])) or vector(0.0)"#),
    ),
    (
        r#"sum by (a) (rate({a="b"}[1m])) / on (a) group_left (c) sum by (a, c) (rate({a="b"}[1m]))"#,
        Ok(
            r#"sum by (a) (rate({a="b"} [1m])) / on(a) group_left(c) sum by (a, c) (rate({a="b"} [1m]))"#,
        ),
    ),
    (
        r#"rate({a="b"}[1m]) unless ignoring (pod) rate({a="c"}[1m])"#,
        Ok(r#"rate({a="b"} [1m]) unless ignoring(pod) rate({a="c"} [1m])"#),
    ),
    (
        r#"label_replace(rate({a="b"}[1m]), "dst", "$1", "src", "(.*)")"#,
        Ok(r#"label_replace(rate({a="b"} [1m]), "dst", "$1", "src", "(.*)")"#),
    ),
    ("# comment\nvector(2)", Ok("vector(2.0)")),
    // Errors, with line and column.
    (r#"app="x""#, Err((1, 1, "unknown function"))),
    (r#"{app="x""#, Err((1, 9, "expected ',' or '}'"))),
    (r#"{app=="x"}"#, Err((1, 5, "unexpected '=='"))),
    (
        r#"{app="x"} |= error"#,
        Err((1, 14, "expected a quoted string")),
    ),
    (r#"{}"#, Err((1, 1, "at least one label matcher"))),
    (r#"{app=~".*"}"#, Err((1, 1, "at least one label matcher"))),
    (
        r#"{app="x"} | json | status >= "#,
        Err((1, 30, "expected a string, number")),
    ),
    (
        r#"{app="x"} | frobnicate"#,
        Err((1, 13, "unknown pipeline stage")),
    ),
    (
        r#"{app="x"}[5m]"#,
        Err((1, 10, "only allowed inside a range aggregation")),
    ),
    (
        "count_over_time({app=\"x\"})",
        Err((1, 26, "expected a range")),
    ),
    (
        "count_over_time({app=\"x\"}\n  [5m]) + ",
        Err((2, 11, "unexpected end of the query")),
    ),
    (
        "sum_over_time({app=\"x\"}[5m])",
        Err((1, 1, "needs an unwrapped value")),
    ),
    (
        "count_over_time({app=\"x\"} | unwrap n [5m])",
        Err((1, 1, "does not take an unwrapped value")),
    ),
    ("1 > 2", Err((1, 3, "must use bool"))),
    ("1 and 2", Err((1, 3, "set operator"))),
    ("vector(1) + bool vector(1)", Err((1, 13, "bool modifier"))),
    ("topk(0, vector(1))", Err((1, 7, "positive integer"))),
    ("nope(vector(1))", Err((1, 1, "unknown function"))),
    (r#"{app="x"} |~ "(""#, Err((1, 15, "invalid regex"))),
    (
        r#"{app="x"} | regexp "(\\w+)""#,
        Err((1, 21, "named capture")),
    ),
    (
        r#"{app="x"} | line_format "{{ if .a }}x{{ end }}""#,
        Err((1, 26, "not supported")),
    ),
    (
        "{app=\"x\"} |= \"unterminated",
        Err((1, 14, "unterminated string")),
    ),
    ("vector(1) +\n\n   ]", Err((3, 4, "unexpected ']'"))),
];

#[test]
fn parse_table() {
    for (q, want) in CASES {
        let got = parse_expr(q).and_then(|e| plan(q).map(|_| e));
        match (got, want) {
            (Ok(e), Ok(canon)) => {
                assert_eq!(e.to_string(), *canon, "query {q}");
                // The canonical text parses to the same tree.
                assert_eq!(parse_expr(canon).as_ref(), Ok(&e), "canonical of {q}");
            }
            (Err(e), Err((line, col, reason))) => {
                assert!(
                    e.reason.contains(reason) && e.line == *line && e.col == *col,
                    "query {q}: got {e}, want {line}:{col} {reason}"
                );
            }
            (got, want) => panic!("query {q}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn precedence_shape() {
    let Ok(Expr::Metric(MetricExpr::Binary { op, rhs, .. })) = parse_expr("1 + 2 * 3 > bool 4")
    else {
        panic!("not a binary expression");
    };
    assert_eq!(op, BinOp::Gt);
    assert_eq!(*rhs, MetricExpr::Number(4.0));
}

#[test]
fn limits_refuse_before_building() {
    let deep = format!("{}vector(1){}", "(".repeat(200), ")".repeat(200));
    assert!(parse_expr(&deep)
        .unwrap_err()
        .reason
        .contains("nests deeper"));
    let many = format!("{{a=\"b\"}}{}", " |~ \"x\"".repeat(20));
    assert!(plan(&many)
        .unwrap_err()
        .reason
        .contains("regular expressions"));
    let long = format!("{{a=\"{}\"}}", "x".repeat(9000));
    assert!(parse_expr(&long).unwrap_err().reason.contains("limit is"));
}

// ---- printed trees parse back to the same tree ----

fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_owned()),
        Just("level".to_owned()),
        Just("status".to_owned()),
        Just("_x1".to_owned()),
        Just("by".to_owned()),
        Just("or".to_owned()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-z\"\\\\ \n\té{}|=]{0,8}"
}

fn match_op() -> impl Strategy<Value = MatchOp> {
    prop_oneof![
        Just(MatchOp::Eq),
        Just(MatchOp::Ne),
        Just(MatchOp::Re),
        Just(MatchOp::Nre)
    ]
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
        Just(CmpOp::Lt),
        Just(CmpOp::Le)
    ]
}

fn label_filter() -> impl Strategy<Value = LabelFilter> {
    let leaf = prop_oneof![
        (ident(), match_op(), "[a-z]{0,4}").prop_map(|(name, op, value)| LabelFilter::Str {
            name,
            op,
            value
        }),
        (ident(), cmp_op(), -1e6f64..1e6).prop_map(|(name, op, value)| LabelFilter::Number {
            name,
            op,
            value
        }),
        (ident(), cmp_op(), 1i64..10_000_000_000_000)
            .prop_map(|(name, op, ns)| LabelFilter::Duration { name, op, ns }),
        (ident(), cmp_op(), 0u64..1 << 40).prop_map(|(name, op, bytes)| LabelFilter::Bytes {
            name,
            op,
            bytes
        }),
    ];
    leaf.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| LabelFilter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| LabelFilter::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn stage() -> impl Strategy<Value = Stage> {
    let line_op = prop_oneof![
        Just(LineOp::Contains),
        Just(LineOp::NotContains),
        Just(LineOp::Regex),
        Just(LineOp::NotRegex),
        Just(LineOp::Pattern),
        Just(LineOp::NotPattern)
    ];
    let extraction = || {
        (ident(), proptest::option::of("[a-z.]{1,5}"))
            .prop_map(|(label, expr)| LabelExtraction { label, expr })
    };
    prop_oneof![
        (line_op, proptest::collection::vec(text(), 1..3))
            .prop_map(|(op, values)| Stage::LineFilter(LineFilterExpr { op, values })),
        proptest::collection::vec(extraction(), 0..3)
            .prop_map(|p| Stage::Parser(ParserExpr::Json(p))),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(extraction(), 0..3)
        )
            .prop_map(
                |(strict, keep_empty, params)| Stage::Parser(ParserExpr::Logfmt {
                    strict,
                    keep_empty,
                    params
                })
            ),
        text().prop_map(|r| Stage::Parser(ParserExpr::Regexp(r))),
        text().prop_map(|p| Stage::Parser(ParserExpr::Pattern(p))),
        Just(Stage::Parser(ParserExpr::Unpack)),
        label_filter().prop_map(Stage::LabelFilter),
        text().prop_map(Stage::LineFormat),
        proptest::collection::vec(
            prop_oneof![
                (ident(), ident()).prop_map(|(dst, src)| LabelFmt::Rename { dst, src }),
                (ident(), text()).prop_map(|(dst, template)| LabelFmt::Template { dst, template }),
            ],
            1..3
        )
        .prop_map(Stage::LabelFormat),
        proptest::collection::vec(
            (ident(), proptest::option::of((match_op(), "[a-z]{0,3}")))
                .prop_map(|(name, matcher)| LabelSel { name, matcher }),
            1..3
        )
        .prop_map(Stage::Drop),
        Just(Stage::Decolorize),
    ]
}

fn log_expr() -> impl Strategy<Value = LogExpr> {
    (
        proptest::collection::vec((ident(), text()), 0..3),
        proptest::collection::vec(stage(), 0..4),
    )
        // `| drop a != "x"` is read greedily as a matcher of drop (as Loki does), so a
        // drop/keep is never followed directly by a negative line filter here.
        .prop_filter("drop followed by a negative line filter is ambiguous", |(_, stages)| {
            !stages.windows(2).any(|w| {
                matches!(&w[0], Stage::Drop(_) | Stage::Keep(_))
                    && matches!(&w[1], Stage::LineFilter(f) if matches!(f.op, LineOp::NotContains | LineOp::NotRegex))
            })
        })
        .prop_map(|(extra, stages)| {
            let mut matchers = vec![LabelMatcher {
                name: "app".into(),
                op: MatchOp::Eq,
                value: "x".into(),
            }];
            matchers.extend(extra.into_iter().map(|(name, value)| LabelMatcher {
                name,
                op: MatchOp::Ne,
                value,
            }));
            LogExpr { matchers, stages }
        })
}

fn grouping() -> impl Strategy<Value = Option<Grouping>> {
    proptest::option::of(
        (any::<bool>(), proptest::collection::vec(ident(), 0..3))
            .prop_map(|(without, labels)| Grouping { without, labels }),
    )
}

fn range_expr() -> impl Strategy<Value = MetricExpr> {
    let plain = prop_oneof![
        Just(RangeOp::CountOverTime),
        Just(RangeOp::Rate),
        Just(RangeOp::BytesOverTime),
        Just(RangeOp::BytesRate),
        Just(RangeOp::AbsentOverTime)
    ];
    let unwrapped = prop_oneof![
        Just(RangeOp::Rate),
        Just(RangeOp::SumOverTime),
        Just(RangeOp::AvgOverTime),
        Just(RangeOp::MaxOverTime),
        Just(RangeOp::StddevOverTime),
        Just(RangeOp::QuantileOverTime),
        Just(RangeOp::LastOverTime)
    ];
    let conv = prop_oneof![
        Just(Conversion::Float),
        Just(Conversion::Duration),
        Just(Conversion::Bytes)
    ];
    let window = (
        1i64..1_000_000_000_000_000,
        -1_000_000_000_000i64..1_000_000_000_000,
    );
    prop_oneof![
        (plain, log_expr(), window.clone()).prop_map(|(op, log, (range_ns, offset_ns))| {
            MetricExpr::Range {
                op,
                param: None,
                range: Box::new(LogRange {
                    log,
                    unwrap: None,
                    range_ns,
                    offset_ns,
                }),
                grouping: None,
            }
        }),
        (
            unwrapped,
            log_expr(),
            window,
            ident(),
            conv,
            proptest::collection::vec(label_filter(), 0..2),
            grouping()
        )
            .prop_map(
                |(op, log, (range_ns, offset_ns), label, conv, post_filters, grouping)| {
                    MetricExpr::Range {
                        op,
                        param: (op == RangeOp::QuantileOverTime).then_some(0.9),
                        range: Box::new(LogRange {
                            log,
                            unwrap: Some(Unwrap {
                                label,
                                conv,
                                post_filters,
                            }),
                            range_ns,
                            offset_ns,
                        }),
                        grouping,
                    }
                }
            ),
    ]
}

fn metric_expr() -> impl Strategy<Value = MetricExpr> {
    let leaf = prop_oneof![range_expr(), (-1e9f64..1e9).prop_map(MetricExpr::VectorLit),];
    leaf.prop_recursive(3, 12, 2, |inner| {
        let vop = prop_oneof![
            Just(VectorOp::Sum),
            Just(VectorOp::Avg),
            Just(VectorOp::Count),
            Just(VectorOp::Topk),
            Just(VectorOp::Stdvar),
            Just(VectorOp::Sort)
        ];
        let bop = prop_oneof![
            Just(BinOp::Add),
            Just(BinOp::Pow),
            Just(BinOp::Gt),
            Just(BinOp::And),
            Just(BinOp::Or),
            Just(BinOp::Unless),
            Just(BinOp::Div)
        ];
        let matching = proptest::option::of(
            (
                any::<bool>(),
                proptest::collection::vec(ident(), 0..2),
                proptest::option::of(proptest::collection::vec(ident(), 0..2)),
            )
                .prop_map(|(on, labels, group)| VectorMatching {
                    on,
                    labels,
                    group: group.map(|g| (GroupSide::Left, g)),
                }),
        );
        prop_oneof![
            (vop, grouping(), inner.clone()).prop_map(|(op, grouping, expr)| MetricExpr::Vector {
                op,
                param: (op == VectorOp::Topk).then_some(2.0),
                grouping: if op == VectorOp::Sort { None } else { grouping },
                expr: Box::new(expr),
            }),
            (bop, any::<bool>(), matching, inner.clone(), inner.clone()).prop_map(
                |(op, b, matching, lhs, rhs)| {
                    let matching = matching.map(|mut m| {
                        if op.is_set() {
                            m.group = None;
                        }
                        m
                    });
                    MetricExpr::Binary {
                        op,
                        return_bool: b && op.is_comparison(),
                        matching,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    }
                }
            ),
            (inner, ident()).prop_map(|(e, dst)| MetricExpr::LabelReplace {
                expr: Box::new(e),
                dst,
                replacement: "$1".into(),
                src: "app".into(),
                regex: "(.*)".into(),
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_log_trees_parse_back(e in log_expr()) {
        let text = Expr::Log(e.clone()).to_string();
        prop_assert_eq!(parse_expr(&text), Ok(Expr::Log(e)), "text: {}", text);
    }

    #[test]
    fn printed_metric_trees_parse_back(e in metric_expr()) {
        let text = Expr::Metric(e.clone()).to_string();
        prop_assert_eq!(parse_expr(&text), Ok(Expr::Metric(e)), "text: {}", text);
    }

    #[test]
    fn any_text_is_answered(s in "\\PC{0,60}") {
        let _ = plan(&s);
    }
}
