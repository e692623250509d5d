"""The SMTP adapter: addresses on the wire, the message, the connection, TLS and errors.

It turns a job into bytes for an SMTP server and says what the server's answer means
(errors.classify). It imports nothing from webapp.services, so the domain can use its
address rules and error classes, and delivery receives `mailer.send_email` injected.
"""
