//! Smoke test of the reliable PUB/SUB bus demo (`ferromq demo`): a short run with every
//! fault (random drops, a burst, connection cuts, a discovery instance killed) must deliver
//! everything exactly once and in order.

use ferromq::rpub::demo::{run, DemoOptions};

#[test]
fn quick_demo_delivers_everything_once_in_order() {
    let report = run(DemoOptions {
        quick: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("demo failed:\n{e}"));
    println!("{}", report.to_markdown());
    let published = report.total_published();
    assert_eq!(published, 8_000, "{report:?}");
    assert_eq!(report.subscribers.len(), 3);
    for s in &report.subscribers {
        assert_eq!(s.published, published, "{}", s.name);
        assert_eq!(s.delivered, published, "{}", s.name);
        assert_eq!(s.lost, 0, "{}", s.name);
        assert_eq!(s.stats_lost, 0, "{}", s.name);
        assert_eq!(s.duplicates, 0, "{}", s.name);
        assert_eq!(s.out_of_order, 0, "{}", s.name);
        assert_eq!(s.corrupt, 0, "{}", s.name);
        assert!(s.anomalies.is_empty(), "{}: {:?}", s.name, s.anomalies);
    }
    // The faults really happened and something was repaired.
    assert!(report.faults.dropped_messages > 0, "{:?}", report.faults);
    assert_eq!(report.faults.discovery_killed, 1);
    assert!(
        report.subscribers.iter().all(|s| s.recovered > 0),
        "{report:?}"
    );
    assert!(report.check().is_ok());
}

/// The checks reject a report with a loss, a duplicate or a short stream.
#[test]
fn report_check_rejects_violations() {
    use ferromq::rpub::demo::{DemoReport, SubscriberReport};
    let good = SubscriberReport {
        name: "sub-1".into(),
        published: 10,
        delivered: 10,
        covered: [[3, 2], [3, 2]],
        ..Default::default()
    };
    let report = |s: SubscriberReport| DemoReport {
        published: [[3, 2], [3, 2]],
        subscribers: vec![s],
        ..Default::default()
    };
    assert!(report(good.clone()).check().is_ok());
    let lost = SubscriberReport {
        delivered: 9,
        lost: 1,
        ..good.clone()
    };
    assert!(report(lost).check().unwrap_err().contains("reported lost"));
    let dup = SubscriberReport {
        duplicates: 1,
        ..good.clone()
    };
    assert!(report(dup).check().unwrap_err().contains("duplicates"));
    let short = SubscriberReport {
        delivered: 9,
        covered: [[3, 2], [3, 1]],
        ..good
    };
    let err = report(short).check().unwrap_err();
    assert!(err.contains("covered up to seq 1 of 2"), "{err}");
}
