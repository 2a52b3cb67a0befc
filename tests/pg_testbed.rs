use seawall::testbed::PgCluster;
#[test]
fn smoke() {
    let t = std::time::Instant::now();
    let c = PgCluster::start(2).unwrap();
    eprintln!("started in {:?}: {:?}", t.elapsed(), c);
    eprintln!(
        "{}",
        c.query(0, "SELECT count(*) FROM pg_stat_replication")
            .unwrap()
    );
    eprintln!("{:?}", c.pids(0).unwrap());
    let t = std::time::Instant::now();
    drop(c);
    eprintln!("dropped in {:?}", t.elapsed());
}
