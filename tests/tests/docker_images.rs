//! The test images run on the real Docker engine and their output is read through bollard.
use bollard::{
    container::LogOutput,
    models::ContainerCreateBody,
    query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder},
};
use drover_tests::docker::{docker, ensure_images, ContainerGuard, BUSYBOX_IMAGE, DEMO_IMAGE};
use futures::StreamExt;

async fn run_and_read(image: &str, env: Vec<String>, cmd: Option<Vec<String>>) -> (String, String) {
    ensure_images();
    let docker = docker().await;
    let name = drover_tests::unique("drover-test");
    let _guard = ContainerGuard(name.clone());
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        env: Some(env),
        cmd,
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .expect("create container");
    docker
        .start_container(
            &name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start container");
    let mut logs = docker.logs(
        &name,
        Some(
            LogsOptionsBuilder::default()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .build(),
        ),
    );
    let (mut out, mut err) = (String::new(), String::new());
    let read = async {
        while let Some(chunk) = logs.next().await {
            match chunk.expect("log stream") {
                LogOutput::StdOut { message } => out.push_str(&String::from_utf8_lossy(&message)),
                LogOutput::StdErr { message } => err.push_str(&String::from_utf8_lossy(&message)),
                _ => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the container's log stream ends when it exits");
    (out, err)
}

#[tokio::test]
async fn demo_image_prints_numbered_lines_to_stdout() {
    let token = drover_tests::unique("tok");
    let (out, err) = run_and_read(
        DEMO_IMAGE,
        vec![
            "EXIT_AFTER_LINES=20".into(),
            "LOG_RATE=200".into(),
            "LOG_FORMAT=json".into(),
            format!("LINE_PREFIX={token}"),
        ],
        None,
    )
    .await;
    let lines: Vec<serde_json::Value> = out
        .lines()
        .chain(err.lines())
        .filter(|l| l.contains(&token))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("json line {l:?}: {e}")))
        .collect();
    let mut seqs: Vec<u64> = lines
        .iter()
        .map(|v| v["seq"].as_u64().expect("seq"))
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=20).collect::<Vec<_>>(),
        "stdout: {out}\nstderr: {err}"
    );
}

#[tokio::test]
async fn busybox_image_runs_shell_scripts() {
    let (out, _) = run_and_read(
        BUSYBOX_IMAGE,
        vec![],
        Some(vec![
            "sh".into(),
            "-c".into(),
            "for i in 1 2 3; do echo line-$i; done".into(),
        ]),
    )
    .await;
    assert_eq!(out, "line-1\nline-2\nline-3\n");
}
