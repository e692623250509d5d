"""The raw SMTP ceiling: plain `smtplib`, N threads, each reusing one connection. Prints JSON.

What the delivery benchmarks compare against: the most messages per second
this machine's Python can hand to the same sink at the same concurrency, with
no database, no queue and no rules. Each message is one transaction (MAIL,
RCPT, DATA) of about the size the app sends. Run in a process of its own.

    .venv/bin/python -m bench.smtp_ceiling --port 8025 --threads 4 --messages 1000
"""

import argparse
import json
import smtplib
import threading
import time
import uuid

BODY = "hello\r\n"


def message(n, run):
    """A small message with a unique Message-ID, about the size of the app's."""
    return (
        f"Subject: ceiling {n}\r\nFrom: scheduler@localhost\r\nTo: reader-{n}@example.com\r\n"
        f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <ceiling-{run}-{n}@localhost>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: 7bit\r\n\r\n{BODY}"
    ).encode()


def measure(port, threads, messages, host="127.0.0.1"):
    """Send `messages` messages over `threads` reused connections; {messages, seconds, per_second}."""
    run = uuid.uuid4().hex[:8]
    counter = iter(range(messages))
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)
    errors = []

    def worker():
        connection = smtplib.SMTP(host, port, timeout=30)
        connection.ehlo()
        barrier.wait()
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    break
                connection.sendmail("scheduler@localhost", [f"reader-{n}@example.com"], message(n, run))
        except Exception as exc:  # reported, not hidden
            errors.append(repr(exc))
        finally:
            connection.quit()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for thread in workers:
        thread.join()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "messages": messages,
        "threads": threads,
        "seconds": round(seconds, 3),
        "per_second": round(messages / seconds, 1),
        "client_cpu_ms_per_message": round(cpu * 1000 / messages, 3),
        "errors": errors[:3],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(measure(args.port, args.threads, args.messages)))


if __name__ == "__main__":
    main()
