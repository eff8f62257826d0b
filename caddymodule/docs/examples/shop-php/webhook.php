<?php
// The shop's endpoint for payhook, in plain PHP (php-cli 8.1 or later, no
// extension beyond the default ones, no framework).
//
// payhook has already verified the provider's callback; this endpoint
// checks that the envelope comes from payhook (sign_upstream: Standard
// Webhooks headers), stores each event once under its id, and answers 2xx
// only once the event is stored.
//
// Configuration, from the environment:
//   PAYHOOK_SHOP_SECRET  the whsec_… secret given to payhook's sign_upstream
//   SHOP_DATA_DIR        where the sample keeps its events and its order log
//
// Try it: php -S 127.0.0.1:8080 webhook.php

declare(strict_types=1);

const TOLERANCE_SECONDS = 300; // webhook-timestamp may be this far in the past or the future

function answer(int $status, string $text): never
{
    http_response_code($status);
    header('Content-Type: text/plain; charset=utf-8');
    echo $text, "\n";
    exit;
}

// verifyPayhookSignature returns whether the headers prove that payhook sent
// $body: an HMAC-SHA256 of "id.timestamp.body" under the secret, compared
// in constant time, and a timestamp within the window.
function verifyPayhookSignature(string $secret, string $id, string $timestamp, string $signatures, string $body): bool
{
    if ($id === '' || !ctype_digit($timestamp) || abs(time() - (int) $timestamp) > TOLERANCE_SECONDS) {
        return false;
    }
    $key = base64_decode(substr($secret, strlen('whsec_')), true);
    if (!str_starts_with($secret, 'whsec_') || $key === false || $key === '') {
        error_log('PAYHOOK_SHOP_SECRET is not a whsec_ secret');
        return false;
    }
    $expected = base64_encode(hash_hmac('sha256', "$id.$timestamp.$body", $key, true));
    // One "v1,<base64>" per secret payhook signs with (two during a rotation).
    foreach (explode(' ', $signatures) as $signature) {
        [$version, $value] = array_pad(explode(',', $signature, 2), 2, '');
        if ($version === 'v1' && hash_equals($expected, $value)) {
            return true;
        }
    }
    return false;
}

// storeOnce writes the event under its id unless it is already stored, and
// returns whether it was new. The file is written in full under a temporary
// name, then linked to its final name: link() fails when that exists, so of
// two deliveries of one event at once, exactly one stores it.
// In your shop: one database transaction that inserts the id into a table
// where it is the primary key and updates the order.
function storeOnce(string $dir, string $id, string $body): bool
{
    $events = "$dir/events";
    if (!is_dir($events) && !mkdir($events, 0o700, true) && !is_dir($events)) {
        throw new RuntimeException("cannot create $events");
    }
    $path = "$events/" . hash('sha256', $id) . '.json'; // no id can name another path
    if (file_exists($path)) {
        return false;
    }
    $temporary = tempnam($events, 'new-');
    if ($temporary === false || file_put_contents($temporary, $body, LOCK_EX) !== strlen($body)) {
        throw new RuntimeException("cannot write $events");
    }
    $stored = @link($temporary, $path);
    unlink($temporary);
    if (!$stored && !file_exists($path)) {
        throw new RuntimeException("cannot store $path");
    }
    return $stored;
}

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    answer(405, 'POST only');
}
$secret = getenv('PAYHOOK_SHOP_SECRET') ?: '';
$dataDir = getenv('SHOP_DATA_DIR') ?: __DIR__ . '/data';
$body = file_get_contents('php://input');

// 1. From payhook? The provider's own signature headers do not reach the
// shop; payhook's do.
$id = $_SERVER['HTTP_WEBHOOK_ID'] ?? '';
if (!verifyPayhookSignature($secret, $id, $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '', $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '', $body)) {
    answer(401, 'signature');
}

// 2. The envelope: a CloudEvents document whose id is the signed webhook-id.
try {
    $event = json_decode($body, true, 64, JSON_THROW_ON_ERROR);
} catch (JsonException) {
    answer(400, 'not JSON');
}
if (!is_array($event) || ($event['id'] ?? null) !== $id || !is_array($event['data'] ?? null)) {
    answer(400, 'not an envelope');
}
$data = $event['data'];

// 3. Once per id: a retry or replay of an event has the same id.
try {
    $new = storeOnce($dataDir, $id, $body);
} catch (RuntimeException $e) {
    error_log($e->getMessage());
    answer(503, 'not stored'); // non-2xx: payhook (or the provider) delivers it again
}
if (!$new) {
    answer(200, 'duplicate');
}

// 4. Act on it. The amount is an integer of minor units (999 = 9.99 EUR):
// compare it with the order's total as integers, never as floats.
$order = $data['merchant_reference'] ?? null;  // your order number, or null
$status = $data['status'];                     // captured, refunded, failed, … (the envelope's list)
$amount = $data['amount'] ?? null;             // ['value' => 999, 'currency' => 'EUR'] or null
$line = sprintf(
    "%s %s %s %s %s %s\n",
    $order ?? '-',
    $status,
    $amount['value'] ?? '-',
    $amount['currency'] ?? '-',
    $data['provider'],
    $id
);
file_put_contents("$dataDir/orders.log", $line, FILE_APPEND | LOCK_EX);

answer(200, 'stored');
