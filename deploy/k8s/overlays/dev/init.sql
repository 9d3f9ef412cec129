-- MySQL's first start (dev overlay and compose.yaml): auth, the gateway and the notifier own
-- separate databases.
-- The image's entrypoint has already made MYSQL_DATABASE (auth) and MYSQL_USER (video2mp3).
CREATE DATABASE IF NOT EXISTS jobs CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
GRANT ALL PRIVILEGES ON jobs.* TO 'video2mp3'@'%';
CREATE DATABASE IF NOT EXISTS notifier CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
GRANT ALL PRIVILEGES ON notifier.* TO 'video2mp3'@'%';
