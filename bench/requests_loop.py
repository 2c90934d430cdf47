"""Sends N GET requests over one keep-alive connection and checks each is a 200.

Usage: python requests_loop.py URL HEADER N   (HEADER is "Name: value" or empty)
"""
import http.client
import sys
import urllib.parse

url, header, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
parts = urllib.parse.urlsplit(url)
headers = dict([tuple(h.strip() for h in header.split(":", 1))]) if header else {}
connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
for _ in range(count):
    connection.request("GET", parts.path, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"{url} answered {response.status}")
