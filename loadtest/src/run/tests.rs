use super::*;

fn parse(words: &[&str]) -> Result<Options, String> {
    Options::parse(&crate::options::args(words))
}

#[test]
fn durations_rates_and_cpus_parse() {
    assert_eq!(duration("--d", "20s").unwrap(), Duration::from_secs(20));
    assert_eq!(
        duration("--d", "250ms").unwrap(),
        Duration::from_millis(250)
    );
    assert_eq!(duration("--d", "2m").unwrap(), Duration::from_secs(120));
    assert_eq!(duration("--d", "3").unwrap(), Duration::from_secs(3));
    for bad in ["", "s", "5h", "-1s", "0s", "2 hours"] {
        assert!(duration("--d", bad).is_err(), "{bad}");
    }
    assert_eq!(loads("max").unwrap(), vec![Load::Max]);
    assert_eq!(
        loads("5000,10000").unwrap(),
        vec![Load::Rate(5000.0), Load::Rate(10000.0)]
    );
    assert!(
        loads("fast")
            .unwrap_err()
            .contains("neither max nor a rate")
    );
    assert!(loads("0").is_err());
    let c = Cpus::parse("client=1,gateway=0+1").unwrap();
    assert_eq!(c.gateway.unwrap().to_list(), "0,1");
    assert!(
        Cpus::parse("server=0")
            .unwrap_err()
            .contains("unknown role")
    );
    assert!(Cpus::parse("client").unwrap_err().contains("role=cpus"));
}

#[test]
fn options_refuse_what_cannot_run() {
    assert!(parse(&[]).unwrap_err().contains("--spawn or --target"));
    assert!(
        parse(&["--spawn", "--target", "http://127.0.0.1:1"])
            .unwrap_err()
            .contains("exclude")
    );
    assert!(
        parse(&["--target", "http://10.1.2.3:80"])
            .unwrap_err()
            .contains("loopback")
    );
    assert!(
        parse(&["--target", "https://127.0.0.1:1"])
            .unwrap_err()
            .contains("http://")
    );
    assert!(
        parse(&["--target", "http://127.0.0.1:1"])
            .unwrap_err()
            .contains("mint")
    );
    assert!(
        parse(&[
            "--target",
            "http://127.0.0.1:1",
            "--master-key",
            "k",
            "--mix",
            "revoked=1"
        ])
        .unwrap_err()
        .contains("--admin-token")
    );
    assert!(
        parse(&[
            "--target",
            "http://127.0.0.1:1",
            "--admin-token",
            "t",
            "--baseline",
            "direct"
        ])
        .unwrap_err()
        .contains("--upstream")
    );
    assert!(
        parse(&["--spawn", "--baseline", "nginx"])
            .unwrap_err()
            .contains("direct or hello")
    );
    assert!(
        parse(&["--spawn", "--mode", "fast"])
            .unwrap_err()
            .contains("proxy or decision")
    );
    assert!(
        parse(&["--spawn", "--duration"])
            .unwrap_err()
            .contains("needs a value")
    );
    let o = parse(&[
        "--spawn",
        "--baseline",
        "hello",
        "--baseline",
        "hello",
        "--rate",
        "5000,max",
    ])
    .unwrap();
    assert_eq!(o.baselines, vec!["hello"]);
    assert_eq!(o.loads, vec![Load::Rate(5000.0), Load::Max]);
    let o = parse(&["--target", "http://localhost:8080", "--admin-token", "t"]).unwrap();
    assert!(matches!(o.target, Target::Url { ref path, .. } if path == "/v1/mcp"));
}

#[test]
fn a_tampered_token_differs_in_one_character() {
    let t = "abcdefghijklmnop";
    let bad = tampered(t);
    assert_eq!(bad.len(), t.len());
    assert_eq!(
        bad.bytes().zip(t.bytes()).filter(|(a, b)| a != b).count(),
        1
    );
}
